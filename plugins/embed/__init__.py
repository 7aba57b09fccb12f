"""The embed plugin: the offline embedding model (provider ``local``) and the ``embed`` action."""
