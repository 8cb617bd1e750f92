"""The agent itself: its loop, the model it talks to, its tools and their rules, its prompt, and agent files.

Like mini-swe-agent, the loop gets its Model and its Environment handed in, so it runs in a test with
no HTTP and no Prefect.
"""
