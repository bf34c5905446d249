"""The monitor's logic. It knows nothing of API Gateway or Lambda: the functions turn requests into these
calls and their results into answers."""
