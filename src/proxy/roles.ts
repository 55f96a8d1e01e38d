/**
 * The roles in the migration proxy's certificates, in KubeVirt's shape: a
 * server certificate per handler (KubeVirt: CN kubevirt.io:system:node:virt-handler)
 * and a migration client certificate (kubevirt.io:system:client:migration).
 * Ferry writes the role as the certs module does (URI SAN spiffe://ferry/<role>).
 */
export const HANDLER_SERVER_ROLE = 'handler';
export const MIGRATION_CLIENT_ROLE = 'migration';
