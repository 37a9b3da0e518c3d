from tests.report.browser import browser, opener

__all__ = ["browser", "opener"]
