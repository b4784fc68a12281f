"""Integrations with libraries that take a plug-in object of their own (not adapters).

``integrations.langchain``: ``LimitRateLimiter``, a LangChain rate limiter backed by a
named limit, ``LimitUsageCallback``, which counts the tokens a model really used, and
``LimitMiddleware`` for LangChain v1 agents. ``integrations.openai.limit_client`` and
``integrations.anthropic.limit_client``: SDK clients whose every model call waits for a
named limit and reports what the provider answered.
Nothing here is imported until you import the integration itself.
"""
