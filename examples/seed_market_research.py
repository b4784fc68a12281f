"""The original README's "Multiple agents hitting OpenAI rate limits and failing":
market and competitor researchers share the ``openai_api`` lock, so however many
run at once, one OpenAI call is in flight at a time.

Run: python examples/seed_market_research.py
"""

import threading

from agentdiff_coordination import coordinate

from _standins import openai  # an offline stand-in for the real client


@coordinate("market_researcher", lock_name="openai_api")
def research_market_trends(industry):
    # Only one agent can call OpenAI API at a time
    client = openai.OpenAI()
    response = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"Research {industry} trends"}]
    )
    return response

@coordinate("competitor_researcher", lock_name="openai_api")
def research_competitors(company):
    # Waits for market_researcher to finish before making API call
    client = openai.OpenAI()
    response = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": f"Analyze {company} competitors"}]
    )
    return response


if __name__ == "__main__":
    industries = ["fintech", "healthcare", "logistics", "retail"]
    companies = ["Acme", "Globex", "Initech", "Umbrella"]
    threads = [threading.Thread(target=research_market_trends, args=(i,)) for i in industries]
    threads += [threading.Thread(target=research_competitors, args=(c,)) for c in companies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{len(threads)} researchers ran on {len(threads)} threads at once")
    print(openai.meter.report())
