"""One LangGraph run per thread with ``serialize_threads``, offline.

    python examples/langgraph_threads.py

A chat graph with a checkpointer gets two messages for one conversation (``thread_id``)
at the same moment, as happens when a user double-texts. Bare, both runs start from
the same checkpoint: the thread's history forks and one reply is lost from the final
state. Through ``serialize_threads`` the second run waits for the first (in arrival
order), the history stays one line, and both turns are kept. With ``mode="reject"``
the second message is refused at once with ``ThreadBusyError`` instead.
"""

from __future__ import annotations

import operator
import threading
import time
from typing import Annotated, Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from agentdiff_coordination.adapters.langgraph import ThreadBusyError, serialize_threads


class Chat(TypedDict):
    messages: Annotated[list[str], operator.add]


def reply(state: Chat) -> Chat:
    time.sleep(0.2)  # the model thinking: long enough for the second message to arrive
    return {"messages": [f"reply to {state['messages'][-1]!r}"]}


def chat_graph() -> Any:
    builder = StateGraph(Chat)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    return builder.compile(checkpointer=InMemorySaver())


CONFIG = {"configurable": {"thread_id": "conversation-1"}}


def double_text(graph: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def send(text: str) -> None:
        try:
            graph.invoke({"messages": [text]}, CONFIG)
        except BaseException as exc:  # noqa: BLE001  shown below
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(text,)) for text in ("hello", "are you there?")]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    return errors


def forks(graph: Any) -> int:
    parents = [s.parent_config["configurable"]["checkpoint_id"] if s.parent_config else None
               for s in graph.get_state_history(CONFIG)]
    return len(parents) - len(set(parents))


def main() -> None:
    bare = chat_graph()
    double_text(bare)
    kept_bare = bare.get_state(CONFIG).values["messages"]
    print(f"bare: {forks(bare)} fork(s) in the thread's history; final state keeps {len(kept_bare)} of 4 messages")

    serialized = serialize_threads(chat_graph())
    double_text(serialized)
    kept = serialized.get_state(CONFIG).values["messages"]
    print(f"serialize_threads: {forks(serialized)} forks; final state keeps {len(kept)} of 4 messages:")
    for message in kept:
        print(f"  {message}")

    rejecting = serialize_threads(chat_graph(), mode="reject")
    errors = double_text(rejecting)
    for error in errors:
        print(f"mode='reject': {type(error).__name__}: {error}")

    ok = forks(bare) > 0 and forks(serialized) == 0 and len(kept) == 4 and [type(e) for e in errors] == [ThreadBusyError]
    print("one linear history per thread" if ok else "CHECKS FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
