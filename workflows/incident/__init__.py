"""The RedisCacheFailure workflow: its handlers, its run loop, its parts and its memory."""
