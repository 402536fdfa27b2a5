"""A Python client generated from proto/ by grpcio-tools, driving a running cosell server.

Run by e2e.rs with the generated code on PYTHONPATH; argument: the server address.
"""

import sys

import grpc

from cosell.directory.v1 import directory_service_pb2 as directory
from cosell.directory.v1 import directory_service_pb2_grpc as directory_grpc
from cosell.identity.v1 import access_service_pb2 as access
from cosell.identity.v1 import access_service_pb2_grpc as access_grpc
from cosell.identity.v1 import resources_pb2 as resources
from cosell.identity.v1 import token_service_pb2 as token
from cosell.identity.v1 import token_service_pb2_grpc as token_grpc
from cosell.identity.v1 import user_service_pb2 as users
from cosell.identity.v1 import user_service_pb2_grpc as users_grpc

channel = grpc.insecure_channel(sys.argv[1])
signed_in = token_grpc.TokenServiceStub(channel).SignInWithEmail(
    token.SignInWithEmailRequest(email="uma.user@contoso.com")
)
auth = [("authorization", "Bearer " + signed_in.access_token)]

me = access_grpc.AccessServiceStub(channel).GetCaller(access.GetCallerRequest(), metadata=auth)
print("email", me.user.email)
for grant in me.grants:
    print("grant", resources.Role.Name(grant.role), grant.mpn_id)

try:
    users_grpc.UserServiceStub(channel).ListUsers(
        users.ListUsersRequest(parent=me.organization), metadata=auth
    )
    print("list users: allowed")
except grpc.RpcError as e:
    print("list users:", e.code().name)

found = directory_grpc.DirectoryServiceStub(channel).SearchEntities(
    directory.SearchEntitiesRequest(query="dynatrace glo", page_size=3), metadata=auth
)
print("first result", found.results[0].entity.legal_name)
