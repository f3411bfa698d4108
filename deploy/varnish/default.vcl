# Varnish in front of thumbd (VCL 4.1; tested with Varnish 7.1, Debian 12).
#
#   varnishd -F -a :6081 -f /etc/varnish/default.vcl -s malloc,1g
#
# thumbd already says how long each answer may be kept, so this VCL mostly
# lets Varnish do what it does by default and fixes the few places where the
# defaults do not fit an image origin:
#
# - Identical concurrent misses are coalesced: Varnish's waiting list holds
#   them while one fetch renders the thumbnail. Thumbnails are therefore
#   never passed, and cookies (which thumbd ignores) are dropped from them so
#   the built-in VCL does not pass them either.
# - The cache key is the default one: Host and the whole URL, query string
#   included, so a signed URL's `token` is part of the key and a cached
#   private thumbnail is only ever served for the very same token. thumbd
#   checks the token before its own cache; Varnish only repeats an answer
#   thumbd gave for that exact URL, for as long as its max-age (the seconds
#   left on the token) allows. Requests carrying `Authorization` (thumbd also
#   takes `Authorization: Bearer <token>`) are passed, never cached, as the
#   built-in VCL does.
# - Cache-Control is honoured: public thumbnails for max-age (a year,
#   immutable), signed ones until their token expires (no grace), cacheable
#   errors (400, 404, 413, 415, 422, `max-age=60` by default) for their short
#   max-age; 401, 403 and 5xx are `no-store` and never stored. Vary is
#   honoured as Varnish always does.
# - /healthz, /readyz and the JSON API (/v1/api/) are passed; /metrics is not
#   served through the cache at all (scrape thumbd directly).
#
# The backend: thumbd on 127.0.0.1:8080. To point at another address, change
# the quoted .host and .port values below; each appears once outside
# comments, so a substitution is unambiguous (deploy/compose.yaml does this):
#   sed -e 's/"127.0.0.1"/"thumbd"/' -e 's/"8080"/"9000"/' default.vcl > /tmp/thumbd.vcl
#   varnishd -F -a :6081 -f /tmp/thumbd.vcl -s malloc,1g
# (`varnishd -b host:port` cannot be combined with `-f`.) The VCL names the
# host by name or address; a name is resolved once, when the VCL loads.

vcl 4.1;

import std;

backend default {
    .host = "127.0.0.1";
    .port = "8080";
    .connect_timeout = 5s;
    # A cold render may wait for a slot and then take up to
    # render.timeout_secs (20 s) on a slow source.
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 30s;
}

sub vcl_recv {
    if (req.url ~ "^/metrics(\?|$)") {
        return (synth(404, "Not Found"));
    }
    if (req.url ~ "^/(healthz|readyz)(\?|$)" || req.url ~ "^/v1/api/") {
        return (pass);
    }
    if (req.url ~ "^/v1/thumbnail/") {
        # thumbd reads no cookies; without this the built-in VCL would pass
        # every request a browser sends with cookies for this host.
        unset req.http.Cookie;
        # Parameter order does not matter to thumbd, so it should not split
        # the cache either. The token stays in the URL, and in the key.
        set req.url = std.querysort(req.url);
    }
    # Falls through to the built-in vcl_recv: GET and HEAD without
    # Authorization or Cookie are looked up (and coalesced); others passed.
}

sub vcl_backend_response {
    if (beresp.status >= 500) {
        # `no-store` from thumbd. Remember "do not cache" only briefly, so a
        # transient 503 does not turn off coalescing for this URL for the
        # built-in 120 s.
        set beresp.ttl = 1s;
        set beresp.uncacheable = true;
        return (deliver);
    }
    if ((beresp.status == 400 || beresp.status == 413 || beresp.status == 415
            || beresp.status == 422)
        && beresp.http.Cache-Control ~ "(?i)(^|[ ,])max-age=[0-9]+"
        && beresp.http.Cache-Control !~ "(?i)no-store|no-cache|private") {
        # Varnish computes a TTL from Cache-Control only for the statuses
        # it deems cacheable (404 is one); thumbd marks these errors
        # cacheable too, for a short max-age.
        set beresp.ttl = std.duration(regsub(beresp.http.Cache-Control,
            "(?i)^.*(^|[ ,])max-age=([0-9]+).*$", "\2") + "s", 0s);
    }
    if (beresp.status >= 400 && beresp.ttl > 300s) {
        set beresp.ttl = 300s;
    }
    if (beresp.http.Cache-Control !~ "(?i)immutable") {
        # Errors and signed thumbnails: nothing stale once max-age is over
        # (a signed thumbnail's max-age ends when its token does).
        set beresp.grace = 0s;
    }
    # Falls through to the built-in VCL: no-store, no-cache, private,
    # Set-Cookie or Vary: * are not stored.
}

sub vcl_deliver {
    if (obj.uncacheable) {
        set resp.http.X-Cache-Status = "PASS";
    } else if (obj.hits > 0) {
        set resp.http.X-Cache-Status = "HIT";
    } else {
        set resp.http.X-Cache-Status = "MISS";
    }
}
