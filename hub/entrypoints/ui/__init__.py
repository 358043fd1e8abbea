"""The failures page: pages, what it reads from a request, and operator authentication."""
