"""The embedded local stack: moto server as AWS, provisioned from template.yaml."""
