"""The original README's workflow: research (OpenAI), analysis (Anthropic), summary.

Each agent is a coordinated step; each ``_complete`` event starts the next agent.
The script only starts the first agent and returns: the handlers finish the chain
before the interpreter exits.

Run: python examples/seed_workflow.py
"""

from agentdiff_coordination import coordinate, when, emit

from _standins import anthropic, openai  # offline stand-ins for the real clients


# Agent 1: Research with OpenAI (protected by API lock)
@coordinate("researcher", lock_name="openai_api")
def research_agent(topic):
    client = openai.OpenAI()
    response = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"Research: {topic}"}]
    )
    return response

# Agent 2: Analysis with Anthropic (protected by different lock)
@coordinate("analyzer", lock_name="anthropic_api")
def analysis_agent(research_data):
    client = anthropic.Anthropic()
    response = client.messages.create(
        model="claude-opus-4-1-20250805",
        max_tokens=1024,
        messages=[{"role": "user", "content": f"Analyze: {research_data}"}]
    )
    return response.content[0].text

# Agent 3: Final summary (no API calls, no lock needed)
@coordinate("summarizer")
def summary_agent(analysis_result):
    return f"Summary: {analysis_result[:200]}..."

# Event-driven coordination
@when("researcher_complete")
def handle_research_done(event_data):
    research_result = event_data['result']
    analysis_agent(research_result)  # Trigger next agent

@when("analyzer_complete")
def handle_analysis_done(event_data):
    analysis_result = event_data['result']
    summary_agent(analysis_result)    # Trigger final agent

@when("summarizer_complete")
def handle_summary_done(event_data):
    final_summary = event_data['result']
    print(f" Workflow complete: {final_summary}")

# Start the agent workflow
if __name__ == "__main__":
    print("Starting the research agent; the analyzer and summarizer follow by events.")
    research_agent("Impact of AI on software development")
