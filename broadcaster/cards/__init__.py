"""Alert cards: a 1080×1080 PNG per language, drawn from the approved text (``content``, then ``render``).

Instagram takes no text-only post, so each of its posts is a card with the text
as caption; X, Telegram and Facebook channels attach one with ``card = true``.
``broadcaster preview --cards DIR`` writes them, the console shows them, and
``serve`` publishes those of live and exercise alerts at ``/cards/{alert_id}/{lang}.png``.
"""
