"""`agent-tasks models check MODEL`: what the model's server and litellm's table say about it, and whether the
agent's first request fits its context."""

from __future__ import annotations

import json

import typer

from tasks_lib.cli.common import CliError, out
from tasks_lib.cli.local_model import local_app

models_app = typer.Typer(
    help="What a model and its server say about themselves; the embedded local model.", no_args_is_help=True
)
models_app.add_typer(local_app, name="local")


@models_app.command("check")
def check(
    model: str = typer.Argument(..., help="litellm model string, e.g. ollama/qwen2.5-coder:1.5b or openai/local."),
    api_base: str | None = typer.Option(None, "--api-base", help="The server (default: the provider's variable)."),
    agent: str = typer.Option("default", "--agent", "-a", help="Whose first request to measure against the context."),
    as_json: bool = typer.Option(False, "--json", help="Print what was found as JSON."),
) -> None:
    """Ask the model's server (llama.cpp /props, Ollama /api/show) and litellm's table what they know: the context
    a request can use, the num_ctx Ollama will be asked for, the price; and whether the agent's prompt fits."""
    from tasks_lib.agent.catalog import find_agent
    from tasks_lib.agent.model import check_model_name
    from tasks_lib.agent.modes import choose_modes
    from tasks_lib.agent.profile import read_profile
    from tasks_lib.agent.prompt import build_system_prompt, initial_messages
    from tasks_lib.agent.spec import AgentFileError
    from tasks_lib.agent.tool_specs import tool_schema

    try:
        check_model_name(model)
        spec = find_agent(agent)
    except (ValueError, AgentFileError) as exc:
        raise CliError(str(exc)) from None
    profile = read_profile(model, api_base or spec.api_base)
    prompt, _ = build_system_prompt(spec, ".")
    tools = [] if spec.loop == "edit" else [tool_schema(name) for name in spec.tool_names]
    first = len(json.dumps(initial_messages(prompt, "a task of a few lines"))) // 4 + len(json.dumps(tools)) // 4
    warning = profile.too_small(first)
    if as_json:
        print(json.dumps({**profile.model_dump(), "first_request_tokens": first, "warning": warning}, indent=2))
        return
    out.print(f"{model}: {profile.server} server" + (f" at {profile.base_url}" if profile.base_url else " (hosted)"))
    for line in profile.found:
        out.print(f"  {line}")
    for line in profile.problems:
        out.print(f"  could not ask: {line}")
    window = profile.window()
    out.print(f"  context the agent counts on: {f'{window:,} tokens' if window else 'unknown'}")
    out.print(f"  price: {'known to litellm' if profile.priced else 'unknown (tokens are counted, cost is not)'}")
    out.print(f"  agent {spec.name}'s first request: about {first:,} tokens")
    _, note = choose_modes(spec, model, profile, [("named.py", "")])
    if note:
        out.print(f"  agent {spec.name} on a task that names a short file: {note.split(': ', 1)[1]}")
    if warning:
        out.print(f"warning: {warning}")
