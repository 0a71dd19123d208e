"""Microsoft Entra ID: service-principal tokens shared by the Power BI and Fabric sinks."""
