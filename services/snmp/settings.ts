/**
 * SNMP settings: the `snmp` section of cdr.yaml merged key by key over the defaults (the configuration
 * loader merges top-level sections only), with the checks that span several keys.
 */

import { DEFAULT_CONFIG, type CdrConfig } from '../common/config.js';
import type { SnmpConfig, SnmpTrapTargetConfig, SnmpUserConfig } from '../common/config-schema.js';
import { CdrError } from '../common/errors.js';

/** Minimum passphrase length of USM (RFC 3414 section 11.2); Net-SNMP rejects shorter ones too. */
export const MIN_PASSPHRASE_LENGTH = 8;

/**
 * Merges `partial` over the defaults and checks it.
 *
 * @throws CdrError `ERR_SNMP_CONFIG_INVALID` with the key in `details.key`. The cases are an authPriv
 *   user without a privacy passphrase, a user listed twice, and a trap target with an unknown user or
 *   with neither user nor community. Also a standalone agent with neither users nor communities, an
 *   SNMPv3 trap target without a fixed engine id, and reconnectMinMs above reconnectMaxMs.
 */
export function resolveSnmpSettings(partial: Partial<SnmpConfig> | undefined): SnmpConfig {
  const defaults = DEFAULT_CONFIG.snmp;
  const configured = (partial ?? {}) as Partial<Omit<SnmpConfig, 'agentx' | 'standalone'>> & {
    agentx?: Partial<SnmpConfig['agentx']>;
    standalone?: Partial<Omit<SnmpConfig['standalone'], 'users' | 'trapTargets'>> & {
      users?: Partial<SnmpUserConfig>[];
      trapTargets?: Partial<SnmpTrapTargetConfig>[];
    };
  };

  const users = (configured.standalone?.users ?? []).map(
    (user): SnmpUserConfig => ({
      name: user.name ?? '',
      level: user.level ?? 'authPriv',
      authProtocol: user.authProtocol ?? 'sha256',
      authPassphrase: user.authPassphrase ?? '',
      privProtocol: user.privProtocol ?? 'aes128',
      privPassphrase: user.privPassphrase ?? '',
    }),
  );
  const trapTargets = (configured.standalone?.trapTargets ?? []).map(
    (target): SnmpTrapTargetConfig => ({ host: target.host ?? '', port: target.port ?? 162, user: target.user ?? '', community: target.community ?? '' }),
  );

  const settings: SnmpConfig = {
    ...defaults,
    ...configured,
    agentx: { ...defaults.agentx, ...configured.agentx },
    standalone: { ...defaults.standalone, ...configured.standalone, users, trapTargets },
  };
  checkSettings(settings);
  return settings;
}

/** Settings for `config`, which loadConfig already checked against the schema. */
export function snmpSettingsOf(config: Readonly<CdrConfig>): SnmpConfig {
  return resolveSnmpSettings(config.snmp);
}

function invalid(key: string, message: string): never {
  throw new CdrError('ERR_SNMP_CONFIG_INVALID', `snmp.${key}: ${message}`, { details: { key: `snmp.${key}` } });
}

function checkSettings(settings: SnmpConfig): void {
  if (settings.agentx.reconnectMinMs > settings.agentx.reconnectMaxMs) {
    invalid(
      'agentx.reconnectMinMs',
      `must not exceed reconnectMaxMs (${settings.agentx.reconnectMaxMs}), got ${settings.agentx.reconnectMinMs}; lower it or raise reconnectMaxMs`,
    );
  }

  const names = new Set<string>();
  settings.standalone.users.forEach((user, position) => {
    if (names.has(user.name)) {
      invalid(`standalone.users[${position}].name`, `user ${user.name} is listed twice; give each user once`);
    }
    names.add(user.name);
    if (user.level === 'authPriv' && user.privPassphrase.length < MIN_PASSPHRASE_LENGTH) {
      invalid(
        `standalone.users[${position}].privPassphrase`,
        `user ${user.name} has level authPriv and needs a privacy passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters, got ${user.privPassphrase.length}`,
      );
    }
  });

  settings.standalone.trapTargets.forEach((target, position) => {
    if (target.user && !names.has(target.user)) {
      invalid(`standalone.trapTargets[${position}].user`, `user ${target.user} is not in snmp.standalone.users; add it there or name a listed user`);
    }
    if (target.user && !settings.standalone.engineId) {
      invalid(
        'standalone.engineId',
        `trap target ${target.host}:${target.port} uses SNMPv3, whose receiver must know this agent's engine id; set a fixed engineId (hex)`,
      );
    }
    if (!target.user && !target.community) {
      invalid(`standalone.trapTargets[${position}]`, 'needs a user (SNMPv3) or a community (v2c); neither is set');
    }
  });

  if (settings.mode === 'standalone' && settings.standalone.users.length === 0 && settings.standalone.communities.length === 0) {
    invalid('standalone.users', 'the standalone agent has no SNMPv3 user and no v2c community, so it could answer no request; add a user');
  }
}
