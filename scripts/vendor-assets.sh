#!/usr/bin/env bash
# Refresh app/web/static/vendor from the npm registry. Run by hand when a version changes;
# the copied files are committed so the app never needs the network at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=app/web/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

fetch() { # npm-spec dir-name
  (cd "$work" && npm pack --silent "$1" >/dev/null 2>&1)
  local tgz
  tgz=$(ls -t "$work"/*.tgz | head -1)
  mkdir -p "$work/$2"
  tar -xzf "$tgz" -C "$work/$2" --strip-components=1
  rm "$tgz"
}

fetch leaflet@1.9.4 leaflet
fetch jquery@3.7.1 jquery
fetch bootstrap@5.2.2 bootstrap
fetch @fortawesome/fontawesome-free@6.2.0 fontawesome
fetch drmonty-leaflet-awesome-markers@2.0.2 awesome-markers
fetch swagger-ui-dist@5.17.14 swagger-ui
fetch leaflet.markercluster@1.1.0 markercluster
fetch leaflet.heat@0.2.0 heat
fetch leaflet-realtime@2.2.0 realtime
fetch leaflet.fullscreen@3.0.0 fullscreen
fetch leaflet-groupedlayercontrol@0.6.1 groupedlayercontrol
fetch leaflet.vectorgrid@1.3.0 vectorgrid
fetch leaflet.featuregroup.subgroup@1.0.2 featuregroup-subgroup
fetch leaflet-mouse-position@1.2.0 mouse-position
# folium's HeatMap loads folium's own leaflet_heat.min.js (Leaflet.heat 0.2.0 plus the weights fix of
# Leaflet.heat PR #78), which is not on npm: copy it from the installed folium package instead.
folium_templates=$("${PYTHON:-.venv/bin/python}" -c \
  'import folium, os; print(os.path.join(os.path.dirname(folium.__file__), "templates"))')

rm -rf "$dest"/{leaflet,jquery,bootstrap,fontawesome,awesome-markers,swagger-ui}
rm -rf "$dest"/{markercluster,heat,realtime,fullscreen,groupedlayercontrol,vectorgrid,featuregroup-subgroup,mouse-position}
mkdir -p "$dest"/{leaflet/images,jquery,bootstrap,fontawesome/css,fontawesome/webfonts,awesome-markers/images,swagger-ui}
mkdir -p "$dest"/{markercluster,heat,realtime,fullscreen,groupedlayercontrol,vectorgrid,featuregroup-subgroup,mouse-position}
cp "$work"/leaflet/dist/leaflet.js "$work"/leaflet/dist/leaflet.css "$work"/leaflet/LICENSE "$dest/leaflet/"
cp "$work"/leaflet/dist/images/* "$dest/leaflet/images/"
cp "$work"/jquery/dist/jquery.min.js "$work"/jquery/LICENSE.txt "$dest/jquery/"
cp "$work"/bootstrap/dist/js/bootstrap.bundle.min.js "$work"/bootstrap/dist/css/bootstrap.min.css "$work"/bootstrap/LICENSE "$dest/bootstrap/"
cp "$work"/fontawesome/css/all.min.css "$dest/fontawesome/css/"
cp "$work"/fontawesome/webfonts/*.woff2 "$work"/fontawesome/webfonts/*.ttf "$dest/fontawesome/webfonts/"
cp "$work"/fontawesome/LICENSE.txt "$dest/fontawesome/"
cp "$work"/awesome-markers/js/leaflet.awesome-markers.min.js "$work"/awesome-markers/css/leaflet.awesome-markers.css "$dest/awesome-markers/"
cp "$work"/awesome-markers/css/images/* "$dest/awesome-markers/images/"
cp "$work"/swagger-ui/swagger-ui-bundle.js "$work"/swagger-ui/swagger-ui.css "$work"/swagger-ui/favicon-32x32.png "$work"/swagger-ui/LICENSE "$dest/swagger-ui/"
cp "$work"/markercluster/dist/{leaflet.markercluster.js,MarkerCluster.css,MarkerCluster.Default.css} "$work"/markercluster/MIT-LICENCE.txt "$dest/markercluster/"
cp "$folium_templates"/leaflet_heat.min.js "$work"/heat/LICENSE "$dest/heat/"
cp "$work"/realtime/dist/leaflet-realtime.min.js "$work"/realtime/LICENSE.md "$dest/realtime/"
cp "$work"/fullscreen/{Control.FullScreen.js,Control.FullScreen.css,icon-fullscreen.svg,LICENSE} "$dest/fullscreen/"
cp "$work"/groupedlayercontrol/dist/leaflet.groupedlayercontrol.min.{js,css} "$work"/groupedlayercontrol/LICENSE.txt "$dest/groupedlayercontrol/"
cp "$work"/vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js "$dest/vectorgrid/"
# leaflet.vectorgrid ships no licence file; its licence is the "Legalese" section of its README.
sed -n '/^## Legalese/,$p' "$work"/vectorgrid/README.md >"$dest/vectorgrid/LICENSE"
cp "$work"/featuregroup-subgroup/dist/leaflet.featuregroup.subgroup.js "$work"/featuregroup-subgroup/LICENSE "$dest/featuregroup-subgroup/"
cp "$work"/mouse-position/src/L.Control.MousePosition.{js,css} "$work"/mouse-position/MIT-LICENCE.txt "$dest/mouse-position/"
# Strip source-map references: the maps are not shipped and browsers would request them.
find "$dest" \( -name '*.js' -o -name '*.css' \) -print0 | xargs -0 sed -i -E '/sourceMappingURL=/d'
echo "vendored into $dest"
