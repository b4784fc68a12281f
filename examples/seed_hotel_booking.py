"""The original README's travel case: "Booking agent confirms a room while Research agent
is still comparing options". The booking starts from the research's ``_complete``
event, so it always books the hotel the research chose, after the research ended.

Run: python examples/seed_hotel_booking.py
"""

from agentdiff_coordination import coordinate, when

from _standins import book_hotel, search_hotels  # offline stand-ins for a travel API


def analyze_options(hotels):
    """Best rating per euro."""
    best = max(hotels, key=lambda h: h["rating"] / h["price"])
    print(f"research finished: compared {len(hotels)} hotels, chose {best['name']}")
    return best


@coordinate("hotel_researcher")
def research_hotels(destination, dates):
    hotels = search_hotels(destination, dates)
    best_hotel = analyze_options(hotels)
    return best_hotel  # @coordinate automatically puts this in event_data['result']

@when("hotel_researcher_complete")  # Auto-triggered when research_hotels() completes
def start_booking(event_data):
    selected_hotel = event_data['result']  # Gets the return value from research_hotels()
    booking_agent(selected_hotel)

# Option 2: With @coordinate (adds monitoring + events for booking step)
@coordinate("hotel_booker")
def booking_agent(hotel):
    return book_hotel(hotel)  # Also emits hotel_booker_started/complete events

@when("hotel_booker_complete")
def confirm(event_data):
    print(f"booked after the research: confirmation {event_data['result']}")


print("research_hotels('Lisbon', ...) starts; the booking waits for its result")
research_hotels("Lisbon", ("2025-10-01", "2025-10-04"))
