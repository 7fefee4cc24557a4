#!/bin/sh
# Ansible inventory script for cluster prd: reads the workspace's Terraform state through yagura.
# Credentials: $MINIO_ACCESS_KEY / $MINIO_SECRET_KEY (or AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY).
: "${YAGURA_STATE_ENDPOINT:=https://minio.ictsc.net:9000}"
: "${YAGURA_STATE_BUCKET:=terraform}"
: "${YAGURA_STATE_KEY:=terraform.tfstate}"
: "${YAGURA_STATE_PREFIX:=env:}"
: "${YAGURA_STATE_REGION:=us-east-1}"
: "${YAGURA_WORKSPACE:=prd}"
: "${AWS_ACCESS_KEY_ID:=${MINIO_ACCESS_KEY:-}}"
: "${AWS_SECRET_ACCESS_KEY:=${MINIO_SECRET_KEY:-}}"
export YAGURA_STATE_ENDPOINT YAGURA_STATE_BUCKET YAGURA_STATE_KEY YAGURA_STATE_PREFIX YAGURA_STATE_REGION \
    YAGURA_WORKSPACE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
exec "${YAGURA:-yagura}" inventory "$@"
