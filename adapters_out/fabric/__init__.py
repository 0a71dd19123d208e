"""Fabric Real-Time Intelligence sinks (DESIGN §8): Eventhouse streaming ingestion over Kusto
REST, and the Eventstream custom endpoint over Event Hubs HTTPS."""
