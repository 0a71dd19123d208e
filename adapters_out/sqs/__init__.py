"""SQS adapters: the shared inbox and its dead-letter queue (DESIGN §6, §7)."""
