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

rm -rf "$dest"/{leaflet,jquery,bootstrap,fontawesome,awesome-markers,swagger-ui}
mkdir -p "$dest"/{leaflet/images,jquery,bootstrap,fontawesome/css,fontawesome/webfonts,awesome-markers/images,swagger-ui}
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
# Strip source-map references: the maps are not shipped and browsers would request them.
find "$dest" \( -name '*.js' -o -name '*.css' \) -print0 | xargs -0 sed -i -E '/sourceMappingURL=/d'
echo "vendored into $dest"
