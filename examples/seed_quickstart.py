"""The original README's first example: a database lock, an API lock, and a handler
that chains the next agent when the researcher completes.

Run: python examples/seed_quickstart.py
"""

from agentdiff_coordination import coordinate, when, emit

from _standins import database, openai  # offline stand-ins for the real clients


def analysis_agent(result):
    """The next agent in the chain (any plain function will do)."""
    print(f"analysis_agent received the research: {result}")


# Prevent race conditions with resource locks
@coordinate("data_processor", lock_name="customer_database")
def process_customer_data(customer_id, data):
    # Only one agent can access this resource at a time
    return database.update_customer(customer_id, data)

# Prevent API rate limits with resource locks
@coordinate("researcher", lock_name="openai_api")
def research_agent(topic):
    # Only one agent can call OpenAI at a time
    client = openai.OpenAI()
    return client.chat.completions.create(
        model="gpt-4",
        messages=[{"role": "user", "content": f"Research: {topic}"}]
    )

# Event-driven coordination (no manual orchestration)
@when("researcher_complete")  # Auto-triggered when research_agent() finishes
def handle_research_done(event_data):
    result = event_data['result']
    analysis_agent(result)  # Chain agents automatically

# Works with your existing code - no framework lock-in
record = process_customer_data("customer-42", {"tier": "gold"})
print(f"customer-42 updated under the customer_database lock: {record['profile']}")
research_agent("AI safety")
print("research_agent returned; its _complete handler chained analysis_agent on a worker thread.")
