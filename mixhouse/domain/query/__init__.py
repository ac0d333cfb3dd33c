"""The Query API's use cases: each module parses an endpoint's parameters into a typed request,
asks the engine for rows, and shapes Mixpanel's response. None of them knows HTTP."""
