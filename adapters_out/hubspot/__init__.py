"""HubSpot CRM API adapters: emails, tickets and their owners."""
