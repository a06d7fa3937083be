"""Custom::CacheIngress: lets a source reach an ElastiCache or MemoryDB cache, and takes back only what it gave.

The words the modules use, each owned by one module:

* **VPC mode** (:mod:`.vpc_lifecycle`): a cache in a VPC (replication group, cache cluster,
  serverless cache, MemoryDB cluster); what it grants is EC2 ingress rules on the cache's security groups.
* **EC2-Classic mode** (:mod:`.classic_lifecycle`): the same resource with ``CacheSecurityGroupName``;
  what it grants is one ingress into a cache security group. :mod:`.modes` is the one switch between the two.
* **rule**: what is granted, an EC2 ingress rule or a cache security group ingress; its **rule key** is
  what AWS knows it by (:meth:`.ledger.Side.key`, spelt by each mode).
* **ledger** (:mod:`.ledger`): the DynamoDB table that records who holds each rule; EC2 and ElastiCache only
  carry out what it decides.
* **rule entry** (:mod:`.ledger`): a rule's item in the ledger: how many hold it, its origin (made,
  pre-existing, authorizing), its rule id and description.
* **holder** (:class:`.ledger.Holder`): one resource instance (stack, logical id, physical id); during a
  replacement the old and the new id are two holders. A **hold** is a holder's item under a rule entry:
  taken before any change (``grant``), dropped when it lets go (``release``).
* **pre-existing**: a rule that was there before any holder (made by hand, say): never revoked.
* **lease** (:meth:`.ledger.Ledger.lease`): set on a rule entry by its last holder while its revoke may still
  land; a new holder waits for it to end rather than count on a rule about to go.
* **held id**: the physical id CloudFormation holds for the resource (the request's PhysicalResourceId);
  a rollback keeps it (``app._restore_held_id``).
* **0.1.0 rules**: rules made by the release before the ledger, which has no entry for them; each is known
  by the description 0.1.0 gave it, and its own resource's last Delete revokes it.
* **deadline** (:class:`.timing.Deadline`): when an invocation's work stops, so that no change reaches AWS
  after the answer or after CloudFormation stops waiting; the story is told there, once.
"""
