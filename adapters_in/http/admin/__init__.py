"""The signed control-plane API: routes (`api`), request signing (`auth`), bodies (`payloads`)."""
