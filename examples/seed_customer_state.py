"""The original README's "Concurrent State Updates": two agents share one customer's
state; the lock ``customer_123`` keeps each agent's updates together.

Both agents run many times at once on separate threads. ``process_data`` looks at the
shared status halfway through the processor's update: without the lock it would
often find the profile updater's "updating" there.

Run: python examples/seed_customer_state.py
"""

import threading
import time

from agentdiff_coordination import coordinate

customer_state = {}
new_profile = {"name": "Ada", "plan": "pro"}
statuses_seen_mid_update = []


def process_data():
    """Slow work in the middle of the processor's update (reads the shared status)."""
    time.sleep(0.002)
    statuses_seen_mid_update.append(customer_state["status"])
    return {"score": 0.93}


# After: Resource locks prevent conflicts
@coordinate("data_processor", lock_name="customer_123")
def process_customer_data():
    customer_state["status"] = "processing"  # ✅ Exclusive access
    result = process_data()
    customer_state["result"] = result        # ✅ Safe update

@coordinate("profile_updater", lock_name="customer_123")
def update_customer_profile():
    customer_state["status"] = "updating"    # ✅ Waits for processor
    customer_state["profile"] = new_profile  # ✅ No conflicts


def run(agent, times):
    for _ in range(times):
        agent()


if __name__ == "__main__":
    agents = [threading.Thread(target=run, args=(process_customer_data, 25)) for _ in range(3)]
    agents += [threading.Thread(target=run, args=(update_customer_profile, 25)) for _ in range(3)]
    for t in agents:
        t.start()
    for t in agents:
        t.join()
    clobbered = sum(status != "processing" for status in statuses_seen_mid_update)
    print(f"processor updates: {len(statuses_seen_mid_update)}, profile updates: 75, run on 6 threads at once")
    print(f"processor updates that saw another agent's status mid-update: {clobbered}")
    print(f"final state: status={customer_state['status']!r}, profile={customer_state['profile']}")
