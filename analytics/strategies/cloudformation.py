"""The image cache behaviour a strategy assumes, as a CloudFormation template (JSON).

What the template holds, and the pages it follows (CloudFormation Template Reference and the CloudFront
Developer Guide):

- ``AWS::CloudFront::Function`` (aws-resource-cloudfront-function.html): the strategy's viewer-request
  function, code inlined (:func:`~edgeproof.analytics.strategies.export_cf_function`, byte for byte),
  runtime ``cloudfront-js-2.0``; ``AutoPublish`` is the ``AutoPublish`` parameter. Only a LIVE function
  can be associated with a cache behaviour, so with ``AutoPublish=false`` the function is created in
  DEVELOPMENT (for ``TestFunction``) and the behaviour runs without it until the stack is updated with
  ``true``. Query-mode strategies have no function: their key is a cache-policy setting.
- ``AWS::CloudFront::CachePolicy`` (aws-resource-cloudfront-cachepolicy.html, "Control the cache key
  with a policy", controlling-the-cache-key.html): the key holds exactly what the strategy's key needs
  (:func:`cache_key_parameters`). Canonical mode: the function moves everything into the path, so no
  query string, header or cookie. Query mode: the allowlist (``whitelist``), the drop list
  (``allExcept``) or the whole query string (``all``); no header (a query-mode key never reads one).
  TTLs: DefaultTTL = MaxTTL = the TTL (30 days as in the case study; the replay's ``--ttl``); MinTTL is
  the TTL too in canonical mode (a canonical key names one rendition, which never changes: every copy
  lives the whole TTL, as the replay models it) and 0 in query mode (a raw query key can name anything:
  the origin's ``Cache-Control`` decides, within MaxTTL). Accept-Encoding is left out: images are not
  compressed.
- ``AWS::CloudFront::OriginAccessControl`` (aws-resource-cloudfront-originaccesscontrol.html): the
  derivative store is an S3 origin signed with SigV4 (``S3OriginConfig`` with an empty
  ``OriginAccessIdentity``, aws-properties-cloudfront-distribution-s3originconfig.html); with
  ``ManageBucketPolicy=true`` an ``AWS::S3::BucketPolicy`` lets the distribution read the bucket
  (it *replaces* the bucket's policy: set false when the bucket has one, and add the statement).
- ``AWS::CloudFront::Distribution`` with an origin group
  (aws-properties-cloudfront-distribution-origingroup.html, "Optimizing high availability with
  CloudFront origin failover", high_availability_origin_failover.html): the derivative store primary,
  the transformer (a custom origin, HTTPS) secondary, failing over on
  :data:`edgeproof.cloudfront.FAILOVER_STATUSES`, the statuses the edge emulator's origin group fails
  over on (403/404 for a rendition not in the store yet). Connection attempts and timeouts are
  CloudFront's defaults as the emulator uses them (``edgeproof.cloudfront``). The function is
  associated on ``viewer-request``; Origin Shield (aws-properties-cloudfront-distribution-originshield.html,
  origin-shield.html) is an option, on both origins.

Parameters: ``StoreBucket`` (and its region), ``TransformerDomain``, ``FunctionName``, ``AutoPublish``,
``ManageBucketPolicy``. What a query-mode strategy does that a cache policy cannot (sorting, case
folding, alias renaming, dropping by prefix …) is listed in :attr:`CloudFormationExport.notes` and the
template's ``Metadata``; such a strategy needs a viewer-request function edgeproof does not export.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from edgeproof.cloudfront import (
    FAILOVER_STATUSES,
    ORIGIN_CONNECTION_ATTEMPTS,
    ORIGIN_CONNECTION_TIMEOUT,
    ORIGIN_RESPONSE_TIMEOUT,
)
from edgeproof.errors import UsageError

from ._query import name_matches
from ._strategy import Strategy
from .cf_function import export_cf_function

__all__ = ["DEFAULT_TTL_SECONDS", "QUERY_STRINGS_QUOTA", "CloudFormationExport", "cache_key_parameters",
           "cloudformation_template"]

#: the case study's TTL: 30 days
DEFAULT_TTL_SECONDS = 30 * 86400
#: CloudFront's default quota of query strings (and of headers) in one cache policy ("Quotas" → "Quotas on
#: policies", cloudfront-limits.html); a longer list needs a quota increase
QUERY_STRINGS_QUOTA = 10
_STORE, _TRANSFORMER, _GROUP = "derivative-store", "transformer", "store-then-transformer"
_REGION_PATTERN = r"[a-z]{2}(-[a-z]+)+-\d"   # OriginShieldRegion: "us-east-2" (origin-shield.html)
_BUCKET_PATTERN = r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"


@dataclass(frozen=True, slots=True)
class CloudFormationExport:
    template: dict[str, Any]
    notes: list[str] = field(default_factory=list)   # what the template cannot express of the strategy

    def to_json(self) -> str:
        return json.dumps(self.template, indent=2) + "\n"


def cache_key_parameters(strategy: Strategy) -> tuple[dict[str, Any], list[str]]:
    """``ParametersInCacheKeyAndForwardedToOrigin`` for the strategy's key, and the notes on what a cache
    policy cannot express of it (empty for canonical mode, where the function does everything)."""
    notes: list[str] = []
    config = strategy.config
    query: dict[str, Any]
    if config.mode == "canonical":
        query = {"QueryStringBehavior": "none"}
    else:
        p = config.params
        if p.allowlist is not None:
            names = [n for n in dict.fromkeys(p.allowlist) if not (p.drop and name_matches(n, p.drop))]
            query = {"QueryStringBehavior": "whitelist", "QueryStrings": names} if names else \
                {"QueryStringBehavior": "none"}
            notes.append("CloudFront matches the listed query-string names as received (case-sensitive, not "
                         "decoded); the strategy matches them decoded and in any case")
        elif p.drop:
            exact = [n for n in dict.fromkeys(p.drop) if not n.endswith("*")]
            prefixes = [n for n in p.drop if n.endswith("*")]
            query = {"QueryStringBehavior": "allExcept", "QueryStrings": exact} if exact else \
                {"QueryStringBehavior": "all"}
            if prefixes:
                notes.append(f"a cache policy drops names, not prefixes: {', '.join(prefixes)} stay in the key")
        else:
            query = {"QueryStringBehavior": "all"}
        listed = query.get("QueryStrings", [])
        if len(listed) > QUERY_STRINGS_QUOTA:
            notes.append(f"the cache policy lists {len(listed)} query strings; CloudFront's default quota is "
                         f"{QUERY_STRINGS_QUOTA} per cache policy (cloudfront-limits.html): request an increase")
        blocks = [name for name, on in (("sort", p.sort), ("lowercase_names", p.lowercase_names),
                                        ("aliases", p.aliases), ("trim", p.trim),
                                        ("lowercase_values", p.lowercase_values),
                                        ("drop_defaults", p.drop_defaults), ("dedupe", p.dedupe)) if on]
        if blocks:
            verb = "needs" if len(blocks) == 1 else "need"
            notes.append(f"the strategy's {', '.join(blocks)} {verb} a viewer-request function (edgeproof exports "
                         "one for canonical mode only); the cache policy alone keys on the query as received")
        notes.append("query mode: the derivative store is keyed by the canonical path, so every miss fails "
                     "over to the transformer")
    params = {
        "EnableAcceptEncodingGzip": False,
        "EnableAcceptEncodingBrotli": False,
        "CookiesConfig": {"CookieBehavior": "none"},
        "HeadersConfig": {"HeaderBehavior": "none"},
        "QueryStringsConfig": query,
    }
    return params, notes


def _origin_shield(region: str | None) -> dict[str, Any]:
    return {} if region is None else {"OriginShield": {"Enabled": True, "OriginShieldRegion": region}}


def cloudformation_template(strategy: Strategy, *, ttl: float = DEFAULT_TTL_SECONDS, origin_shield: str | None = None,
                            store_bucket: str | None = None, transformer_domain: str | None = None,
                            auto_publish: bool = True) -> CloudFormationExport:
    """The template (see the module docstring); ``store_bucket`` / ``transformer_domain`` become the
    parameters' defaults (without them the stack asks for them)."""
    import re

    if ttl <= 0 or ttl != int(ttl):
        raise UsageError(f"--ttl must be a whole number of seconds above 0 for a cache policy, not {ttl:g}")
    if origin_shield is not None and re.fullmatch(_REGION_PATTERN, origin_shield) is None:
        raise UsageError(f"--origin-shield {origin_shield!r} is not an AWS region code like us-east-2")
    if store_bucket is not None and re.fullmatch(_BUCKET_PATTERN, store_bucket) is None:
        raise UsageError(f"--store-bucket {store_bucket!r} is not an S3 bucket name")
    ttl_s = int(ttl)
    canonical = strategy.config.mode == "canonical"
    key_params, notes = cache_key_parameters(strategy)

    parameters: dict[str, Any] = {
        "StoreBucket": {"Type": "String", "AllowedPattern": _BUCKET_PATTERN,
                        "Description": "the derivative store: an S3 bucket (primary origin, read through OAC)"},
        "StoreBucketRegion": {"Type": "String", "Default": "us-east-1", "AllowedPattern": _REGION_PATTERN,
                              "Description": "the store bucket's region"},
        "TransformerDomain": {"Type": "String", "MinLength": 1,
                              "Description": "the transformer's domain name (secondary origin, HTTPS), e.g. an ALB"},
        "ManageBucketPolicy": {"Type": "String", "Default": "true", "AllowedValues": ["true", "false"],
                               "Description": "true: this stack sets the bucket policy that lets the distribution "
                               "read the store (it replaces any policy the bucket has)"},
    }
    if store_bucket is not None:
        parameters["StoreBucket"]["Default"] = store_bucket
    if transformer_domain is not None:
        parameters["TransformerDomain"]["Default"] = transformer_domain
    conditions: dict[str, Any] = {"ManageBucketPolicyOn": {"Fn::Equals": [{"Ref": "ManageBucketPolicy"}, "true"]}}
    resources: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    behavior: dict[str, Any] = {
        "TargetOriginId": _GROUP,
        "ViewerProtocolPolicy": "redirect-to-https",
        "AllowedMethods": ["GET", "HEAD"],   # an origin group serves GET, HEAD (and OPTIONS) only
        "CachedMethods": ["GET", "HEAD"],
        "Compress": False,
        "CachePolicyId": {"Ref": "ImageCachePolicy"},
    }
    if canonical:
        code = export_cf_function(strategy)
        parameters["FunctionName"] = {"Type": "String", "Default": f"edgeproof-{strategy.name}"[:64],
                                      "AllowedPattern": "[a-zA-Z0-9-_]{1,64}",
                                      "Description": "the CloudFront Function's name"}
        parameters["AutoPublish"] = {"Type": "String", "Default": "true" if auto_publish else "false",
                                     "AllowedValues": ["true", "false"],
                                     "Description": "true: publish the function to LIVE and attach it on "
                                     "viewer-request; false: create it in DEVELOPMENT only (for TestFunction)"}
        conditions["AutoPublishOn"] = {"Fn::Equals": [{"Ref": "AutoPublish"}, "true"]}
        resources["ViewerRequestFunction"] = {
            "Type": "AWS::CloudFront::Function",
            "Properties": {
                "Name": {"Ref": "FunctionName"},
                "AutoPublish": {"Fn::If": ["AutoPublishOn", True, False]},
                "FunctionConfig": {"Comment": f"edgeproof strategy {strategy.name}"[:128],
                                   "Runtime": "cloudfront-js-2.0"},
                "FunctionCode": code,
            },
        }
        behavior["FunctionAssociations"] = {"Fn::If": ["AutoPublishOn", [
            {"EventType": "viewer-request", "FunctionARN": {"Fn::GetAtt": ["ViewerRequestFunction", "FunctionARN"]}},
        ], {"Ref": "AWS::NoValue"}]}
        outputs["FunctionARN"] = {"Value": {"Fn::GetAtt": ["ViewerRequestFunction", "FunctionARN"]}}
    resources["ImageCachePolicy"] = {
        "Type": "AWS::CloudFront::CachePolicy",
        "Properties": {"CachePolicyConfig": {
            "Name": {"Fn::Sub": f"${{AWS::StackName}}-{strategy.name}"},
            "Comment": f"edgeproof strategy {strategy.name} ({strategy.config.mode} mode)",
            "DefaultTTL": ttl_s, "MaxTTL": ttl_s, "MinTTL": ttl_s if canonical else 0,
            "ParametersInCacheKeyAndForwardedToOrigin": key_params,
        }},
    }
    resources["StoreOriginAccessControl"] = {
        "Type": "AWS::CloudFront::OriginAccessControl",
        "Properties": {"OriginAccessControlConfig": {
            "Name": {"Fn::Sub": "${AWS::StackName}-store"},
            "Description": "the derivative store, read by CloudFront only",
            "OriginAccessControlOriginType": "s3", "SigningBehavior": "always", "SigningProtocol": "sigv4",
        }},
    }
    timeouts = {"ConnectionAttempts": ORIGIN_CONNECTION_ATTEMPTS, "ConnectionTimeout": int(ORIGIN_CONNECTION_TIMEOUT)}
    origins = [
        {"Id": _STORE, "DomainName": {"Fn::Sub": "${StoreBucket}.s3.${StoreBucketRegion}.amazonaws.com"},
         "S3OriginConfig": {"OriginAccessIdentity": ""},
         "OriginAccessControlId": {"Fn::GetAtt": ["StoreOriginAccessControl", "Id"]},
         **timeouts, **_origin_shield(origin_shield)},
        {"Id": _TRANSFORMER, "DomainName": {"Ref": "TransformerDomain"},
         "CustomOriginConfig": {"OriginProtocolPolicy": "https-only", "HTTPSPort": 443,
                                "OriginSSLProtocols": ["TLSv1.2"],
                                "OriginReadTimeout": int(ORIGIN_RESPONSE_TIMEOUT)},
         **timeouts, **_origin_shield(origin_shield)},
    ]
    statuses = sorted(FAILOVER_STATUSES)
    resources["Distribution"] = {
        "Type": "AWS::CloudFront::Distribution",
        "Properties": {"DistributionConfig": {
            "Enabled": True,
            "Comment": f"edgeproof image cache behaviour, strategy {strategy.name}"[:128],
            "HttpVersion": "http2and3",
            "Origins": origins,
            "OriginGroups": {"Quantity": 1, "Items": [{
                "Id": _GROUP,
                "FailoverCriteria": {"StatusCodes": {"Quantity": len(statuses), "Items": statuses}},
                "Members": {"Quantity": 2, "Items": [{"OriginId": _STORE}, {"OriginId": _TRANSFORMER}]},
            }]},
            "DefaultCacheBehavior": behavior,
        }},
    }
    resources["StoreBucketPolicy"] = {
        "Type": "AWS::S3::BucketPolicy",
        "Condition": "ManageBucketPolicyOn",
        "Properties": {"Bucket": {"Ref": "StoreBucket"}, "PolicyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Sid": "CloudFrontReadsTheDerivativeStore", "Effect": "Allow",
                "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
                "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${StoreBucket}/*"},
                "Condition": {"StringEquals": {"AWS:SourceArn": {
                    "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}:distribution/${Distribution}"}}},
            }],
        }},
    }
    outputs.update({
        "DistributionId": {"Value": {"Ref": "Distribution"}},
        "DistributionDomainName": {"Value": {"Fn::GetAtt": ["Distribution", "DomainName"]}},
        "CachePolicyId": {"Value": {"Ref": "ImageCachePolicy"}},
    })
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": f"edgeproof: the image cache behaviour of strategy {strategy.name} ({strategy.config.mode} "
                       "mode): derivative store (S3, OAC) then transformer, one cache policy"
                       + (", the viewer-request function" if canonical else ""),
        "Metadata": {"edgeproof": {"strategy": strategy.name, "mode": strategy.config.mode,
                                   "ttl_seconds": ttl_s, "notes": notes}},
        "Parameters": parameters,
        "Conditions": conditions,
        "Resources": resources,
        "Outputs": outputs,
    }
    return CloudFormationExport(template, notes)
