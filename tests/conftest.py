"""Session-wide test plugins: the moto server the AWS adapters' tests and contract suites share."""

pytest_plugins = ["tests.moto_server"]
