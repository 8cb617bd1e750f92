"""The human gate: the review form, waiting and deciding, line comments, resuming from outside, rendering a change."""
