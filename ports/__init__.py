"""The Protocols core needs, named for what they do, not for a vendor (DESIGN §1)."""
