"""DynamoDB adapters: the shared ledger and the control-plane stores (DESIGN §6, §7)."""
