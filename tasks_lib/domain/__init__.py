"""The project's plain data: what a task asks for, what a session records and the field types they share.

Nothing here imports anything else of tasks_lib; every other room builds on these types.
"""
