"""What the push sinks (Power BI, Fabric) share: rows as JSON objects, the shutdown gate, the HTTP client."""
