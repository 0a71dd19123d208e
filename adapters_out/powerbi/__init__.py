"""Power BI push-dataset sink: MSAL auth, InGroup REST client, limiter + batcher, dataset upkeep."""
