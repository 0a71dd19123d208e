"""Session-wide test plugins: the moto server the AWS adapters' tests and contract suites share,
and the Power BI emulator fixtures the unit, integration and e2e Power BI tests share."""

pytest_plugins = ["tests.support.moto_server", "tests.support.powerbi.fixtures"]
