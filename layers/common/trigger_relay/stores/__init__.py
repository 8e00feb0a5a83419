"""Durable state in DynamoDB, S3 and Secrets Manager: quota, ledger, credentials, parked records."""
