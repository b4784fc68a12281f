"""The original README's "API Rate Limit Chaos": three agents started on three threads
at once queue on the ``openai_api`` lock instead of hitting the API together.

Run: python examples/seed_api_queue.py
"""

import threading

from agentdiff_coordination import coordinate

from _standins import openai  # an offline stand-in for the real client


def prompt(text):
    return dict(model="gpt-4o", messages=[{"role": "user", "content": text}])


# After: Resource locks queue API calls safely
@coordinate("researcher", lock_name="openai_api")
def research_agent():
    response = openai.chat.completions.create(**prompt("Research: agent frameworks"))  # ✅ Queued safely

@coordinate("analyzer", lock_name="openai_api")
def analysis_agent():
    response = openai.chat.completions.create(**prompt("Analyze: agent frameworks"))  # ✅ Waits for researcher

@coordinate("summarizer", lock_name="openai_api")
def summary_agent():
    response = openai.chat.completions.create(**prompt("Summarize: agent frameworks"))  # ✅ Waits for analyzer


if __name__ == "__main__":
    # Run in parallel, as before - now safely
    threads = [
        threading.Thread(target=research_agent),
        threading.Thread(target=analysis_agent),
        threading.Thread(target=summary_agent),
    ]
    for _ in range(5):  # five rounds of the three agents
        threads += [threading.Thread(target=f) for f in (research_agent, analysis_agent, summary_agent)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"{len(threads)} agent runs on {len(threads)} threads started together")
    print(openai.meter.report())
