"""Web pages (folium maps) and their locally served assets."""
