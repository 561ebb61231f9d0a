# shellcheck shell=bash
# The nginx reference proxy that scripts/bench.sh and scripts/callgrind.sh
# measure shardgate against, in one place so the two compare with the same
# reference: proxy_pass to the mock with an upstream keep-alive pool and no
# buffering. Sourced, not run.
#
#   nginx_proxy_conf DIR MOCK_PORT NGINX_PORT "HEAD DIRECTIVES" > DIR/nginx.conf
nginx_proxy_conf() {
  local dir=$1 mock_port=$2 nginx_port=$3 head=$4
  cat <<CONF
$head
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  upstream mock { server 127.0.0.1:$mock_port; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:$nginx_port reuseport;
    keepalive_requests 1000000;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
    }
  }
}
CONF
}
