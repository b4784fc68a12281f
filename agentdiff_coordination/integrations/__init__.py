"""Integrations with libraries that take a plug-in object of their own (not adapters).

``integrations.langchain``: ``LimitRateLimiter``, a LangChain rate limiter backed by a
named limit, and ``LimitUsageCallback``, which counts the tokens a model really used.
Nothing here is imported until you import the integration itself.
"""
