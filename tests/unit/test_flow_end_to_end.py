"""The flow's run form: the TaskRequest fields its parameter schema shows (no run needed).

The whole flow on real repositories is in tests/flow/test_flow_end_to_end.py.
"""

from __future__ import annotations


def test_the_run_form_schema_shows_the_task_request_fields():
    from prefect.utilities.callables import parameter_schema

    from flows.agent_task import agent_task

    schema = parameter_schema(agent_task).model_dump()
    assert schema["required"] == ["request"]
    fields = schema["definitions"]["TaskRequest"]["properties"]
    assert "ModelRung" in schema["definitions"], "the run form shows a ladder's rungs with their fields"
    assert set(fields) == {
        "repository",
        "instructions",
        "branch",
        "agent",
        "model",
        "models",
        "reviewer",
        "review",
        "on_accept",
        "trigger",
        "temperature",
        "image",
        "sandbox",
        "network",
        "env",
        "setup_command",
        "setup_network",
        "egress",
        "shadow_builtins",
        "concurrency_key",
        "concurrency_limit",
        "cancel_superseded",
        "attempts",
        "stop_at_first_green",
        "limits",
        "hidden_check",
        "independent_review",
    }
    assert fields["attempts"]["default"] == 1 and fields["attempts"]["maximum"] == 8  # best-of-N from the run form
    assert fields["instructions"]["minLength"] == 1 and fields["agent"]["default"] == "default"
    assert "bubblewrap" in fields["sandbox"]["description"] and fields["shadow_builtins"]["default"] is False
    assert "git URL" in fields["repository"]["description"]
    assert fields["concurrency_limit"]["minimum"] == 1 and "take turns" in fields["concurrency_key"]["description"]
    assert schema["definitions"]["TaskRequest"]["required"] == ["repository", "instructions"]
