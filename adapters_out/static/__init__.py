"""Embedded roster and CRM directory read from settings and local JSON files (no vendor API)."""
