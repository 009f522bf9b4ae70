"""The xai backend (xai-sdk): backend.py composes config, errors (failure → billed or
not, retried or not), transport (one RPC under those rules), inputs, images, video, chat."""
