"""The original README's "Data analysis started before data collection finished": the
analyzer starts from the ``data_collection_complete`` event, so it always sees the
whole dataset.

Run: python examples/seed_data_pipeline.py
"""

from agentdiff_coordination import coordinate, when, emit

from _standins import scrape_multiple_sources  # an offline stand-in for the scrapers


def perform_analysis(dataset):
    sources = sorted({row["source"] for row in dataset})
    total = sum(row["spend"] for row in dataset)
    return {"rows": len(dataset), "sources": sources, "total_spend": total}


@coordinate("data_collector")
def collect_customer_data():
    data = scrape_multiple_sources()
    emit("data_collection_complete", {"dataset": data})
    return data

@when("data_collection_complete")
def start_analysis(event_data):
    dataset = event_data['dataset']
    analysis_agent(dataset)  # Only starts when collection is done

@coordinate("data_analyzer")
def analysis_agent(dataset):
    return perform_analysis(dataset)

@when("data_analyzer_complete")
def show(event_data):
    result = event_data["result"]
    print(f"analysis ran on {result['rows']} rows from {len(result['sources'])} sources: "
          f"{', '.join(result['sources'])}; total spend {result['total_spend']}")


rows = collect_customer_data()
print(f"collection finished with {len(rows)} rows; the analysis starts from its event")
