"""`loop: auto` / `edit_format: auto` settled per model, and the model ladder as agent files and requests write it."""

from __future__ import annotations

import pytest

from tasks_lib.agent.files import parse_agent_file
from tasks_lib.agent.ladder import filled_ladder, on_rung
from tasks_lib.agent.modes import EDIT_LOOP_MAX_LINES, choose_modes, model_billions
from tasks_lib.agent.profile import ModelProfile
from tasks_lib.agent.spec import AgentFileError, AgentSpec
from tasks_lib.domain.request import TaskRequest

NAMED = [("calc.py", "def add(a, b):\n    pass\n")]


@pytest.mark.parametrize(
    ("name", "billions"),
    [
        ("openai/qwen2.5-coder-1.5b", 1.5),
        ("ollama/llama3:8b", 8),
        ("ollama/qwen2.5-coder:32b", 32),
        ("openrouter/mistralai/mixtral-8x7b", 56),
        ("openai/Qwen3-30B-A3B", 30),
        ("openai/gpt-4o", None),
        ("anthropic/claude-sonnet-4-5", None),
    ],
)
def test_a_models_size_is_read_from_its_name(name, billions):
    assert model_billions(name)[0] == billions


def test_the_servers_word_on_size_beats_the_name():
    profile = ModelProfile(model="openai/local", server="llama.cpp", parameters=1_543_714_304)
    assert model_billions("openai/whatever-70b", profile) == (pytest.approx(1.543714304), "llama.cpp says")


def test_auto_gives_a_small_model_the_edit_loop_and_whole_files_and_a_large_one_tools():
    auto = AgentSpec(name="a")
    small, note = choose_modes(auto, "openai/qwen2.5-coder-1.5b", None, NAMED)
    assert (small.loop, small.edit_format, small.max_reply_tokens) == ("edit", "whole", 1500)
    assert "1.5B parameters (its name says)" in note and "loop edit" in note
    large, note = choose_modes(auto, "anthropic/claude-sonnet-4-5", None, NAMED)
    assert (large.loop, large.edit_format, large.max_reply_tokens) == ("tools", "replace", None)
    assert "not a small model" in note and "capped" not in note


def test_auto_keeps_a_small_model_on_tools_when_there_is_nothing_to_show_it_or_too_much():
    auto = AgentSpec(name="a")
    nothing, note = choose_modes(auto, "ollama/llama3:8b", None, [])
    assert nothing.loop == "tools" and "names no file" in note and nothing.edit_format == "whole"
    big_file = [("big.py", "x = 1\n" * (EDIT_LOOP_MAX_LINES + 1))]
    big, note = choose_modes(auto, "ollama/llama3:8b", None, big_file)
    assert big.loop == "tools" and f"over {EDIT_LOOP_MAX_LINES}" in note
    reader, note = choose_modes(AgentSpec(name="r", tools=["read_file", "search"]), "ollama/llama3:8b", None, NAMED)
    assert reader.loop == "tools" and "does not write" in note


def test_settings_the_agent_chose_are_left_alone():
    fixed = AgentSpec(name="f", loop="tools", edit_format="replace", temperature=0.7)
    assert choose_modes(fixed, "openai/qwen2.5-coder-1.5b", None, NAMED) == (fixed, None)


def test_a_small_model_answers_greedily_on_one_attempt_and_samples_for_several():
    one, note = choose_modes(AgentSpec(name="a"), "openai/qwen2.5-coder-1.5b", None, NAMED)
    assert one.temperature == 0 and "temperature 0 (one attempt)" in note
    fixed, note = choose_modes(AgentSpec(name="f", loop="tools", edit_format="replace"), "ollama/qwen:7b", None, [])
    assert fixed.temperature == 0 and fixed.loop == "tools" and note.endswith("temperature 0 (one attempt)")
    assert fixed.max_reply_tokens is None, "fixed modes get no reply cap, as before the temperature default"
    several, note = choose_modes(AgentSpec(name="a"), "openai/qwen2.5-coder-1.5b", None, NAMED, attempts=3)
    assert several.temperature is None and "temperature" not in note
    chosen, _ = choose_modes(AgentSpec(name="a", temperature=0.7), "openai/qwen2.5-coder-1.5b", None, NAMED)
    assert chosen.temperature == 0.7
    large, note = choose_modes(AgentSpec(name="a"), "anthropic/claude-sonnet-4-5", None, NAMED)
    assert large.temperature is None and "temperature" not in note


def test_a_ladder_is_a_list_of_models_or_rungs_and_fills_what_a_rung_leaves_out():
    agent = parse_agent_file(
        "---\nname: l\ntemperature: 0.2\nloop: tools\nmodels:\n  - openai/a-1.5b\n"
        "  - {model: openai/b, temperature: 0.8, loop: auto}\n---\nbody\n",
        "/x/l.md",
    )
    first, second = filled_ladder(agent, agent.models)
    assert (first.model, first.temperature, first.loop) == ("openai/a-1.5b", 0.2, "tools")
    assert (second.model, second.temperature, second.loop) == ("openai/b", 0.8, "auto")
    running = on_rung(agent, second, [])
    assert (running.model, running.models, running.temperature, running.loop) == ("openai/b", None, 0.8, "auto")
    assert TaskRequest(repository="/r", instructions="x", models="openai/a, openai/b").models[1].model == "openai/b"


def test_an_agent_file_sets_model_or_models_not_both():
    with pytest.raises(AgentFileError, match="'model' .* or 'models'"):
        parse_agent_file("---\nname: l\nmodel: openai/a\nmodels: [openai/b]\n---\n", "/x/l.md")
    with pytest.raises(AgentFileError, match="models"):
        parse_agent_file("---\nname: l\nmodels: [{model: openai/b, colour: red}]\n---\n", "/x/l.md")
