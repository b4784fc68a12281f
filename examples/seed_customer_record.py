"""The original README's "Multiple agents updating the same customer record": a lock per
customer (``customer_456``) keeps a profile update and a preference update from
overlapping, so neither overwrites the other's read-modify-write.

Run: python examples/seed_customer_record.py
"""

import threading

from agentdiff_coordination import coordinate

from _standins import db  # an offline stand-in for the customer database


@coordinate("profile_updater", lock_name="customer_456")
def update_profile(customer_id, new_data):
    # Only one agent can update this customer at a time
    return db.update_customer(customer_id, new_data)

@coordinate("preference_updater", lock_name="customer_456")
def update_preferences(customer_id, preferences):
    # Waits for profile update to complete
    return db.update_preferences(customer_id, preferences)


if __name__ == "__main__":
    threads = []
    for i in range(20):
        threads.append(threading.Thread(target=update_profile, args=("customer_456", {f"field_{i}": i})))
        threads.append(threading.Thread(target=update_preferences, args=("customer_456", {f"pref_{i}": True})))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    record = db.records["customer_456"]
    kept = len(record.get("profile", {})) + len(record.get("preferences", {}))
    print(f"{db.writes} updates of customer_456 from {len(threads)} threads at once")
    print(f"overlapping updates: {db.overlapping}")
    print(f"record version {record['version']}: {kept} of {db.writes} updates kept, lost updates: {db.writes - kept}")
