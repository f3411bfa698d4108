# Several thumbd nodes behind Varnish (tested with Varnish 7.1 in
# tests/cluster.rs): the shard director sends every request for one video
# (the URL's path: org, env, key and format, without the query) to the same
# node, so that node's coalescing and caches serve all of the video's
# thumbnails: one render however many requests arrive, cluster-wide.
#
# Use it with default.vcl, which stays as it is, from a top-level VCL:
#
#   vcl 4.1;
#   include "nodes.vcl";
#   include "default.vcl";
#
# (Varnish joins subroutines of the same name in the order they come: the
# vcl_recv here picks the node first, for every request, then default.vcl's
# decides what is cached or passed. Its `backend default` is left unused.)
# List your nodes below; each is
# probed at /readyz, and a node that fails its probe (or is draining for a
# shutdown) loses its videos to the next healthy node on the ring until it
# is back. Nodes must share [cache.shared] and jobs.database_url; see README
# "Running several nodes".

import directors;

backend node1 {
    .host = "10.0.0.11";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 30s;
    .probe = { .url = "/readyz"; .interval = 2s; .timeout = 1s; .window = 3; .threshold = 2; }
}

backend node2 {
    .host = "10.0.0.12";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 30s;
    .probe = { .url = "/readyz"; .interval = 2s; .timeout = 1s; .window = 3; .threshold = 2; }
}

backend node3 {
    .host = "10.0.0.13";
    .port = "8080";
    .connect_timeout = 2s;
    .first_byte_timeout = 60s;
    .between_bytes_timeout = 30s;
    .probe = { .url = "/readyz"; .interval = 2s; .timeout = 1s; .window = 3; .threshold = 2; }
}

sub vcl_init {
    new nodes = directors.shard();
    nodes.add_backend(node1);
    nodes.add_backend(node2);
    nodes.add_backend(node3);
    nodes.reconfigure();
}

sub vcl_recv {
    # The path only, as nginx's `hash $uri consistent`.
    set req.backend_hint = nodes.backend(by=KEY, key=nodes.key(regsub(req.url, "\?.*$", "")));
}
