"""Alert delivery to an incoming webhook (Slack, Microsoft Teams, any URL)."""
