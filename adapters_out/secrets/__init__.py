"""Secret sources: static values from the environment, or AWS Secrets Manager with a TTL."""
