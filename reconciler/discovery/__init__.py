"""Discovery: find models that could serve a use case better, check and rank them.

`sources/` asks the places models are offered (one adapter each), `eligibility` and `ranking`
judge what they found (pure), `discover` ties them together per use case.
"""
