"""The original README's "Manual Orchestration Nightmare", after: the researcher's
completion starts the analyzer, whose completion starts the summarizer. No
orchestration code: start the first agent and the events do the rest.

Run: python examples/seed_event_chain.py
"""

from agentdiff_coordination import coordinate, when

research_data = {"topic": "agent coordination", "sources": 12, "key_finding": "locks beat retries"}


@coordinate("analyzer")
def analysis_agent(research):
    print(f"analyzer: {research['sources']} sources on {research['topic']}")
    return f"{research['key_finding']} ({research['sources']} sources)"

@coordinate("summarizer")
def summary_agent(analysis):
    print(f"summarizer: condensing '{analysis}'")
    return f"TL;DR: {analysis}"


# After: Event-driven coordination
@coordinate("researcher")
def research_agent():
    print("researcher: gathering sources")
    return research_data

@when("researcher_complete")
def start_analysis(event_data):
    analysis_agent(event_data['result'])  # ✅ Auto-triggered

@when("analyzer_complete")
def start_summary(event_data):
    summary_agent(event_data['result'])   # ✅ Auto-chained

@when("summarizer_complete")
def report(event_data):
    print(f"final report: {event_data['result']}")


# Just start the workflow - coordination happens automatically
research_agent()  # Everything else flows automatically
