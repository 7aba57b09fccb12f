"""The agent plugin: AI enrichment of documents (action ``agent``)."""
