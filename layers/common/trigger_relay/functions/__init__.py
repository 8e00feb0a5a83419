"""The two functions' adapters: Lambda events in, the domain wired to AWS and HTTP clients."""
