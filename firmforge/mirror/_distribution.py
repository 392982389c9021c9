"""What the synthetic OpenWrt distribution contains: releases, targets, devices and packages.

Pure data plus the few rules that turn it into per-release facts (version strings, ABI names,
kernel versions). Values follow the real distribution closely (research/imagebuilder-formats.md
§0.1, §1.5, §1.8, §3.1); they are a stand-in, so exact package versions do not matter, but their
shapes do.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEVICES",
    "PACKAGES",
    "RELEASES",
    "TARGETS",
    "Device",
    "DeviceImage",
    "PackageSpec",
    "Release",
    "Target",
    "abi_name",
]


@dataclass(frozen=True)
class Release:
    version: str
    era: str  # "23.05" or "24.10": decides formats (§0.1 version matrix)
    version_code: str
    source_date_epoch: int
    kernel_version: str
    kernel_release: str
    bumped: frozenset[str] = frozenset()  # packages whose release number goes up in this release

    @property
    def ib_compression(self) -> str:
        return "xz" if self.era == "23.05" else "zst"

    @property
    def has_kmods_dir(self) -> bool:
        """23.05.6 and later split kmods into their own directory; 23.05.5 did not."""
        return self.era != "23.05"

    @property
    def index_json_version(self) -> int:
        return 1 if self.era == "23.05" else 2

    @property
    def revision_commit(self) -> str:
        return self.version_code.split("-", 1)[1]

    def package_version(self, version: str, release: int) -> str:
        """23.05 writes ``1.2.3-1``, 24.10 the apk-compatible ``1.2.3-r1`` (§3.1)."""
        if self.era == "23.05":
            return f"{version}-{release}"
        return f"{version}-r{release}"

    def kernel_package_version(self, vermagic: str) -> str:
        if self.era == "23.05":
            return f"{self.kernel_version}-{self.kernel_release}-{vermagic}"
        return f"{self.kernel_version}~{vermagic}-r{self.kernel_release}"

    def kmod_version(self) -> str:
        return self.package_version(self.kernel_version, int(self.kernel_release))


RELEASES: tuple[Release, ...] = (
    Release("23.05.5", "23.05", "r24106-10cc5fcd00", 1727094886, "5.15.167", "1"),
    Release("24.10.4", "24.10", "r28959-29397011cc", 1760000000, "6.6.110", "1"),
    Release(
        "24.10.5",
        "24.10",
        "r29087-d9c5716d1d",
        1766000000,
        "6.6.119",
        "1",
        bumped=frozenset({"dnsmasq", "dnsmasq-full", "dropbear", "luci-base", "netifd", "curl"}),
    ),
)


@dataclass(frozen=True)
class Target:
    board: str
    subtarget: str
    arch: str  # CPU arch printed by `make info`
    arch_packages: str
    description: str
    extra_default_packages: tuple[str, ...]
    rootfs_partsize: int = 104

    @property
    def name(self) -> str:
        return f"{self.board}/{self.subtarget}"


TARGETS: tuple[Target, ...] = (
    Target(
        "x86",
        "64",
        "x86_64",
        "x86_64",
        "x86 64-bit",
        ("partx-utils", "mkf2fs", "e2fsprogs", "kmod-button-hotplug", "kmod-e1000e", "kmod-igc",
         "grub2-bios-setup"),
    ),
    Target(
        "ath79",
        "generic",
        "mips",
        "mips_24kc",
        "Atheros ATH79 Generic",
        ("kmod-gpio-button-hotplug", "swconfig", "kmod-ath9k", "uboot-envtools",
         "wpad-basic-mbedtls"),
    ),
    Target(
        "ramips",
        "mt7621",
        "mipsel",
        "mipsel_24kc",
        "MediaTek Ralink MIPS MT7621",
        ("kmod-gpio-button-hotplug", "kmod-leds-gpio", "wpad-basic-mbedtls", "uboot-envtools"),
    ),
)

# include/target.mk: the base set, then router extras; the package manager comes from
# include/default-packages.mk in 24.10 and from target.mk in 23.05 (same place in the line).
BASE_DEFAULT_PACKAGES: tuple[str, ...] = (
    "base-files", "ca-bundle", "dropbear", "fstools", "libc", "libgcc", "libustream-mbedtls",
    "logd", "mtd", "netifd", "opkg", "uci", "uclient-fetch", "urandom-seed", "urngd", "busybox",
    "procd", "procd-ujail", "dnsmasq", "firewall4", "nftables", "kmod-nft-offload", "odhcp6c",
    "odhcpd-ipv6only", "ppp", "ppp-mod-pppoe",
)


@dataclass(frozen=True)
class DeviceImage:
    filesystem: str
    image: str  # e.g. "sysupgrade.bin", "combined-efi.img.gz"

    @property
    def type(self) -> str:
        return self.image.split(".")[0]


_SYSUPGRADE = (DeviceImage("squashfs", "sysupgrade.bin"),)
_SYSUPGRADE_FACTORY = (
    DeviceImage("squashfs", "sysupgrade.bin"),
    DeviceImage("squashfs", "factory.bin"),
)


@dataclass(frozen=True)
class Device:
    target: str
    id: str
    titles: tuple[dict[str, str], ...]
    packages: tuple[str, ...] = ()
    supported_devices: tuple[str, ...] = ()
    image_size_kib: int | None = None
    images: tuple[DeviceImage, ...] = _SYSUPGRADE
    has_image_metadata: bool = True
    kernel_install: bool = False
    rootfs_targz: bool = False
    initramfs: bool = True  # the mirror carries an initramfs kernel; the IB never builds one

    @property
    def title(self) -> str:
        first = self.titles[0]
        if "title" in first:
            return first["title"]
        return " ".join(first[k] for k in ("vendor", "model", "variant") if k in first)


def _t(vendor: str, model: str, variant: str | None = None) -> dict[str, str]:
    title = {"vendor": vendor, "model": model}
    if variant:
        title["variant"] = variant
    return title


DEVICES: tuple[Device, ...] = (
    Device(
        "x86/64",
        "generic",
        (_t("Generic", "x86/64"),),
        images=tuple(
            DeviceImage(fs, image)
            for fs in ("ext4", "squashfs")
            for image in ("combined-efi.img.gz", "combined.img.gz", "rootfs.img.gz")
        ),
        has_image_metadata=False,
        kernel_install=True,
        rootfs_targz=True,
        initramfs=False,
    ),
    Device(
        "ath79/generic",
        "8dev_carambola2",
        (_t("8devices", "Carambola2"),),
        packages=("kmod-usb-chipidea2",),
        supported_devices=("8dev,carambola2", "carambola2"),
        image_size_kib=16000,
    ),
    Device(
        "ath79/generic",
        "glinet_gl-ar150",
        (_t("GL.iNet", "GL-AR150"),),
        packages=("kmod-usb-chipidea2",),
        supported_devices=("glinet,gl-ar150", "gl-ar150"),
        image_size_kib=16000,
    ),
    Device(
        "ath79/generic",
        "tplink_archer-c7-v5",
        (_t("TP-Link", "Archer C7", "v5"),),
        packages=("kmod-usb2", "kmod-usb-ledtrig-usbport", "kmod-ath10k-ct",
                  "ath10k-firmware-qca988x-ct"),
        supported_devices=("tplink,archer-c7-v5", "archer-c7-v5"),
        image_size_kib=15104,
        images=_SYSUPGRADE_FACTORY,
    ),
    Device(
        "ath79/generic",
        "tplink_tl-wr1043nd-v4",
        (_t("TP-Link", "TL-WR1043ND", "v4"), _t("TP-Link", "TL-WR1043N", "v4")),
        packages=("kmod-usb2", "kmod-usb-ledtrig-usbport"),
        supported_devices=("tplink,tl-wr1043nd-v4", "tl-wr1043nd-v4"),
        image_size_kib=15552,
        images=_SYSUPGRADE_FACTORY,
    ),
    Device(  # 8 MiB of flash: the defaults fit, a few big packages do not
        "ath79/generic",
        "tplink_tl-wr842n-v3",
        (_t("TP-Link", "TL-WR842N", "v3"), _t("TP-Link", "TL-MR3420", "v3")),
        packages=("kmod-usb2", "kmod-usb-ledtrig-usbport"),
        supported_devices=("tplink,tl-wr842n-v3", "tl-wr842n-v3"),
        image_size_kib=7936,
        images=_SYSUPGRADE_FACTORY,
    ),
    Device(
        "ath79/generic",
        "ubnt_unifiac-lite",
        (_t("Ubiquiti", "UniFi AC Lite"),),
        packages=("kmod-ath10k-ct", "ath10k-firmware-qca988x-ct", "-swconfig"),
        supported_devices=("ubnt,unifiac-lite", "unifiac-lite"),
        image_size_kib=15744,
    ),
    Device(
        "ramips/mt7621",
        "xiaomi_mi-router-4a-gigabit",
        (_t("Xiaomi", "Mi Router 4A", "Gigabit Edition"),),
        packages=("kmod-mt7603", "kmod-mt76x2"),
        supported_devices=("xiaomi,mi-router-4a-gigabit",),
        image_size_kib=14848,
    ),
    Device(
        "ramips/mt7621",
        "netgear_r6220",
        (_t("NETGEAR", "R6220"),),
        packages=("kmod-mt7603", "kmod-mt76x2", "kmod-usb3"),
        supported_devices=("netgear,r6220",),
        image_size_kib=28672,
        images=(DeviceImage("squashfs", "sysupgrade.bin"), DeviceImage("squashfs", "factory.img")),
    ),
    Device(
        "ramips/mt7621",
        "totolink_x5000r",
        (_t("TOTOLINK", "X5000R"),),
        packages=("kmod-mt7915-firmware",),
        supported_devices=("totolink,x5000r",),
        image_size_kib=15808,
    ),
    Device(
        "ramips/mt7621",
        "ubnt_edgerouter-x",
        (_t("Ubiquiti", "EdgeRouter X"),),
        packages=("-wpad-basic-mbedtls", "-uboot-envtools"),
        supported_devices=("ubnt,edgerouter-x", "ubnt-erx", "ubiquiti,edgerouterx"),
        image_size_kib=262144,
    ),
)


@dataclass(frozen=True)
class PackageSpec:
    name: str  # without ABI suffix
    version: str
    feed: str  # "target", "kmods" (kernel modules), "base", "luci", "packages"
    size_kib: int
    description: str
    depends: tuple[str, ...] = ()  # base names; "a | b" alternatives allowed
    section: str = "utils"
    license: str = "GPL-2.0"
    abi: dict[str, str] | None = None  # era -> ABI version
    arch_all: bool = False
    conflicts: tuple[str, ...] = ()
    provides: tuple[str, ...] = ()
    service: tuple[str, int] | None = None  # init script name, START priority
    conffiles: tuple[str, ...] = ()
    eras: tuple[str, ...] = ("23.05", "24.10")
    release: int = 1
    essential: bool = False
    only_target: str | None = None  # target-specific packages, e.g. grub for x86/64

    def abi_for(self, era: str) -> str | None:
        return (self.abi or {}).get(era)


def abi_name(name: str, abi: str | None) -> str:
    """The package name with its ABI suffix; a ``-`` separates two digits (§3.1)."""
    if not abi:
        return name
    return f"{name}-{abi}" if name[-1].isdigit() else f"{name}{abi}"


def _p(name: str, version: str, feed: str, size: int, description: str, *deps: str,
       **kwargs: object) -> PackageSpec:
    return PackageSpec(name, version, feed, size, description, tuple(deps), **kwargs)  # type: ignore[arg-type]


_UBOX = {"23.05": "20230523", "24.10": "20240329"}
_UBUS = {"23.05": "20230605", "24.10": "20231128"}

PACKAGES: tuple[PackageSpec, ...] = (
    # target packages (targets/<t>/<s>/packages): base-files, toolchain libs, target tools
    _p("base-files", "1528", "target", 60, "This package contains a base filesystem and system "
       "scripts for OpenWrt.", "netifd", "jsonfilter", "usign", "openwrt-keyring", "fstools",
       "fwtool", section="base", service=("boot", 10), conffiles=("/etc/config/system",
                                                                  "/etc/passwd", "/etc/shadow")),
    _p("libgcc", "12.3.0", "target", 60, "GCC support library", section="libs",
       abi={"23.05": "1", "24.10": "1"}, license="GPL-3.0-with-GCC-exception"),
    _p("grub2-bios-setup", "2.12", "target", 180, "GRUB2 BIOS setup utility", "libc",
       section="boot", only_target="x86/64"),
    # base feed (packages/<arch>/base)
    _p("busybox", "1.36.1", "base", 420, "The Swiss Army Knife of embedded Linux.", "libc",
       section="base", service=("cron", 50), essential=True),
    _p("ca-bundle", "20240203", "base", 230, "System CA certificates as a bundle", arch_all=True,
       section="base", license="MPL-2.0"),
    _p("dnsmasq", "2.90", "base", 160, "DNS and DHCP server", "libc", "libubus", "jsonfilter",
       section="net", service=("dnsmasq", 19), conffiles=("/etc/config/dhcp",),
       conflicts=("dnsmasq-full",)),
    _p("dnsmasq-full", "2.90", "base", 240, "DNS and DHCP server (with DNSSEC, DHCPv6, nftset)",
       "libc", "libubus", "jsonfilter", "libnettle8", "kmod-nft-core", "libnftnl11",
       section="net", service=("dnsmasq", 19), conffiles=("/etc/config/dhcp",),
       conflicts=("dnsmasq",), provides=("dnsmasq",)),
    _p("dropbear", "2022.82", "base", 110, "Small SSH2 client/server", "libc", section="net",
       service=("dropbear", 19), conffiles=("/etc/config/dropbear",), license="MIT"),
    _p("firewall4", "2024.08.19~dc0d8e3e", "base", 90, "OpenWrt 4th gen firewall", "ucode",
       "ucode-mod-fs", "kmod-nft-core", "nftables-json", "libubox", section="net",
       service=("firewall", 19), conffiles=("/etc/config/firewall",), license="ISC"),
    _p("fstools", "2024.01.22~08cd7083", "base", 70, "OpenWrt filesystem tools", "libubox",
       "libuci", "libblobmsg-json", "ubox", section="base", service=("fstab", 11)),
    _p("fwtool", "2019.11.12~8f7fe925", "base", 12, "Utility for appending and extracting "
       "firmware metadata and signatures", "libc", section="base"),
    _p("jsonfilter", "2024.01.23~594cfa86", "base", 16, "OpenWrt JSON filter utility",
       "libubox", "libjson-c", section="base", license="ISC"),
    _p("jshn", "2024.03.29~eb9bcb64", "base", 16, "Library for parsing and generating JSON "
       "from shell scripts", "libjson-c", "libubox", "libblobmsg-json", section="utils",
       license="ISC"),
    _p("libblobmsg-json", "2024.03.29~eb9bcb64", "base", 10, "blobmsg <-> json conversion "
       "library", "libjson-c", "libubox", section="libs", abi=_UBOX, license="ISC"),
    _p("libjson-c", "0.17", "base", 40, "A JSON implementation in C", section="libs",
       abi={"23.05": "5", "24.10": "5"}, license="MIT"),
    _p("libmbedtls", "3.6.2", "base", 360, "Embedded SSL/TLS library", section="libs",
       abi={"23.05": "12", "24.10": "21"}, license="GPL-2.0-or-later"),
    _p("libnettle8", "3.9.1", "base", 180, "GNU crypto library", "libgmp10", section="libs"),
    _p("libgmp10", "6.3.0", "base", 240, "GNU multiprecision arithmetic library", section="libs"),
    _p("libnftnl11", "1.2.6", "base", 90, "Low-level netlink API to nf_tables", "libmnl0",
       section="libs"),
    _p("libmnl0", "1.0.5", "base", 16, "Minimalistic Netlink library", section="libs"),
    _p("libnl-tiny", "2023.12.05~965c4bf4", "base", 18, "netlink socket library", section="libs",
       abi={"23.05": "1", "24.10": "1"}, license="LGPL-2.1"),
    _p("libubox", "2024.03.29~eb9bcb64", "base", 40, "Basic utility library", section="libs",
       abi=_UBOX, license="ISC"),
    _p("libubus", "2023.11.28~f84eb599", "base", 20, "OpenWrt RPC client library", "libubox",
       section="libs", abi=_UBUS, license="LGPL-2.1"),
    _p("libuci", "2023.08.10~5781664d", "base", 30, "C library for the Unified Configuration "
       "Interface (UCI)", "libubox", section="libs", abi={"23.05": "20130104",
                                                          "24.10": "20130104"}),
    _p("libustream-mbedtls", "2024.02.10~d8c3d2ee", "base", 16, "ustream SSL Library (mbedtls)",
       "libubox", "libmbedtls", section="libs", abi={"23.05": "20201210", "24.10": "20201210"},
       license="ISC", provides=("libustream-ssl",)),
    _p("logd", "2024.02.16~f8c3dd48", "base", 24, "OpenWrt system log implementation",
       "libubox", "libubus", "libblobmsg-json", section="base", service=("log", 12)),
    _p("mtd", "26", "base", 24, "Update utility for trx firmware images", "libubox",
       section="utils"),
    _p("netifd", "2024.01.04~c18cc79d", "base", 190, "OpenWrt Network Interface Configuration "
       "Daemon", "libuci", "libnl-tiny", "libubus", "ubus", "ubusd", "jshn", "libubox",
       section="base", service=("network", 20), conffiles=("/etc/config/network",)),
    _p("nftables-json", "1.0.9", "base", 260, "nftables userspace utility with JSON support",
       "kmod-nft-core", "libnftnl11", "libjson-c", section="net", provides=("nftables",),
       conflicts=("nftables-nojson",)),
    _p("odhcp6c", "2023.05.12~bcd28363", "base", 40, "Embedded DHCPv6-client for OpenWrt",
       "libubox", section="net"),
    _p("odhcpd-ipv6only", "2024.05.08~a2988231", "base", 80, "OpenWrt DHCP/DHCPv6(-PD)/RA "
       "Server (IPv6-only)", "libubox", "libuci", "libubus", "libnl-tiny", section="net",
       service=("odhcpd", 35), conflicts=("odhcpd",)),
    _p("odhcpd", "2024.05.08~a2988231", "base", 96, "OpenWrt DHCP/DHCPv6(-PD)/RA Server",
       "libubox", "libuci", "libubus", "libnl-tiny", section="net", service=("odhcpd", 35),
       conflicts=("odhcpd-ipv6only",)),
    _p("openwrt-keyring", "2024.11.01~fce11a6a", "base", 6, "OpenWrt Developer Keyring",
       arch_all=True, section="base"),
    _p("opkg", "2024.10.16~38eccbb1", "base", 120, "opkg package manager", "libc", "uclient-fetch",
       "libpthread", section="base", conffiles=("/etc/opkg.conf", "/etc/opkg/customfeeds.conf")),
    _p("libpthread", "1.2.5", "base", 4, "POSIX thread library (compat)", section="libs",
       license="MIT"),
    _p("ppp", "2.4.9.git-2021-01-04", "base", 230, "PPP daemon", "kmod-pppoe", section="net",
       license="BSD-4-Clause"),
    _p("ppp-mod-pppoe", "2.4.9.git-2021-01-04", "base", 30, "PPPoE plugin", "ppp",
       "kmod-pppoe", section="net"),
    _p("procd", "2024.03.30~e3d4e8ca", "base", 130, "OpenWrt system process manager",
       "ubusd", "ubus", "libjson-c", "libubox", "libubus", "libblobmsg-json", "libuci",
       section="base", service=("sysfixtime", 0)),
    _p("procd-ujail", "2024.03.30~e3d4e8ca", "base", 90, "OpenWrt process jail helper",
       "procd", "libubox", section="base"),
    _p("procd-seccomp", "2024.03.30~e3d4e8ca", "base", 40, "OpenWrt process seccomp helper",
       "libubox", section="base"),
    _p("rpcd", "2024.02.22~8ef4c289", "base", 60, "OpenWrt ubus RPC backend server",
       "libubus", "libubox", "libuci", "libblobmsg-json", "libjson-c", section="utils",
       service=("rpcd", 12), conffiles=("/etc/config/rpcd",)),
    _p("swconfig", "12", "base", 20, "Switch configuration utility", "libuci", "libnl-tiny",
       section="base"),
    _p("ubox", "2024.04.26~85f10530", "base", 40, "OpenWrt system helper toolbox", "libubox",
       "ubusd", "ubus", "libubus", "libuci", section="base"),
    _p("ubus", "2023.11.28~f84eb599", "base", 14, "OpenWrt RPC client utility", "libubus",
       "libblobmsg-json", "ubusd", section="base"),
    _p("ubusd", "2023.11.28~f84eb599", "base", 24, "OpenWrt RPC daemon", "libubox",
       "libblobmsg-json", section="base"),
    _p("ucode", "2024.07.11~1a8a0bcf", "base", 120, "ucode - Tiny scripting language",
       "libjson-c", section="utils", license="ISC"),
    _p("ucode-mod-fs", "2024.07.11~1a8a0bcf", "base", 30, "ucode filesystem module", "ucode",
       section="utils", license="ISC"),
    _p("uboot-envtools", "2024.01", "base", 40, "read/modify U-Boot bootloader environment",
       "libubox", section="utils", conffiles=("/etc/config/ubootenv",)),
    _p("uci", "2023.08.10~5781664d", "base", 16, "Utility for the Unified Configuration "
       "Interface (UCI)", "libuci", section="base"),
    _p("uclient-fetch", "2024.04.19~e8780fa7", "base", 20, "Tiny wget replacement using "
       "libuclient", "libuclient", section="net", provides=("wget",), license="ISC"),
    _p("libuclient", "2024.04.19~e8780fa7", "base", 20, "HTTP/1.1 client library", "libubox",
       section="libs", abi={"23.05": "20201210", "24.10": "20201210"}, license="ISC"),
    _p("uhttpd", "2023.06.25~34a8a74d", "base", 50, "Tiny single-threaded HTTP server",
       "libubox", "libblobmsg-json", "libjson-c", section="net", service=("uhttpd", 50),
       conffiles=("/etc/config/uhttpd",), license="ISC"),
    _p("urandom-seed", "3", "base", 4, "/etc/urandom.seed handling for OpenWrt", section="base",
       service=("urandom_seed", 99)),
    _p("urngd", "2023.11.01~44365eb1", "base", 14, "OpenWrt non-physical true random number "
       "generator based on timing jitter", "libubox", section="utils", service=("urngd", 0)),
    _p("usign", "2020.05.23~f1f65026", "base", 22, "OpenWrt signature verification utility",
       "libubox", section="base", license="ISC"),
    _p("wpad-basic-mbedtls", "2024.09.15~5ace39b0", "base", 520, "hostapd/wpa_supplicant "
       "(basic, mbedTLS)", "libc", "libubus", "libmbedtls", "libnl-tiny", "libucode",
       section="net", service=("wpad", 19), conflicts=("wpad-mbedtls",),
       provides=("hostapd", "wpa-supplicant"), license="BSD-3-Clause"),
    _p("wpad-mbedtls", "2024.09.15~5ace39b0", "base", 780, "hostapd/wpa_supplicant (full, "
       "mbedTLS)", "libc", "libubus", "libmbedtls", "libnl-tiny", "libucode", section="net",
       service=("wpad", 19), conflicts=("wpad-basic-mbedtls",),
       provides=("hostapd", "wpa-supplicant"), license="BSD-3-Clause"),
    _p("libucode", "2024.07.11~1a8a0bcf", "base", 90, "ucode runtime library", "libjson-c",
       section="libs", abi={"23.05": "20230711", "24.10": "20230711"}, license="ISC"),
    _p("partx-utils", "2.39.3", "base", 80, "inform kernel about partitions", "libblkid1",
       section="utils"),
    _p("libblkid1", "2.39.3", "base", 140, "block device id library", "libuuid1",
       section="libs"),
    _p("libuuid1", "2.39.3", "base", 20, "DCE compatible UUID library", section="libs"),
    _p("mkf2fs", "1.16.0", "base", 60, "Utility for creating an F2FS filesystem", "libf2fs6",
       section="utils"),
    _p("libf2fs6", "1.16.0", "base", 60, "F2FS filesystem library", "libuuid1", section="libs"),
    _p("e2fsprogs", "1.47.0", "base", 400, "Ext2/3/4 filesystem utilities", "libuuid1",
       "libblkid1", section="utils"),
    _p("wireless-regdb", "2024.10.07", "base", 8, "Wireless Regulatory Database",
       arch_all=True, section="firmware", license="ISC"),
    _p("ath10k-firmware-qca988x-ct", "2020.11.08", "base", 380, "ath10k-ct firmware for "
       "QCA988x devices", arch_all=True, section="firmware", license="Redistributable"),
    _p("iwinfo", "2024.10.20~b94f066e", "base", 20, "Generalized Wireless Information utility",
       "libiwinfo", section="utils"),
    _p("libiwinfo", "2024.10.20~b94f066e", "base", 40, "Generalized Wireless Information "
       "Library", "libnl-tiny", "libuci", "libubus", section="libs",
       abi={"23.05": "20230701", "24.10": "20230701"}),
    # packages feed
    _p("auc", "0.3.2", "packages", 30, "Attended sysUpgrade CLI (EXPERIMENTAL)", "libubox",
       "libubus", "libuci", "libuclient", "libblobmsg-json", "libjson-c", "rpcd-mod-rpcsys",
       section="utils", eras=("23.05",)),
    _p("owut", "2024.12.03~8d2bcc8e", "packages", 60, "OpenWrt Upgrade Tool", "ucode",
       "ucode-mod-fs", "ucode-mod-uclient", "rpcd-mod-rpcsys", "attendedsysupgrade-common",
       arch_all=True, section="utils", eras=("24.10",)),
    _p("ucode-mod-uclient", "2024.07.11~1a8a0bcf", "packages", 16, "ucode uclient module",
       "ucode", "libuclient", section="utils", eras=("24.10",)),
    _p("attendedsysupgrade-common", "10", "packages", 6, "Attended sysupgrade common files",
       arch_all=True, section="utils", conffiles=("/etc/config/attendedsysupgrade",)),
    _p("rpcd-mod-rpcsys", "2024.02.22~8ef4c289", "packages", 10, "rpcd system module",
       "rpcd", section="utils"),
    _p("curl", "8.10.1", "packages", 110, "cURL is a tool for getting files from remote servers",
       "libcurl", section="net", license="MIT"),
    _p("libcurl", "8.10.1", "packages", 320, "A client-side URL transfer library",
       "libmbedtls", section="libs", abi={"23.05": "4", "24.10": "4"}, license="MIT"),
    _p("htop", "3.3.0", "packages", 130, "Interactive processes viewer", "libncurses6",
       section="admin"),
    _p("libncurses6", "6.4", "packages", 260, "Terminal handling library", section="libs",
       license="MIT"),
    _p("nano", "8.2", "packages", 120, "An enhanced clone of the Pico text editor",
       "libncurses6", section="utils", license="GPL-3.0-or-later"),
    _p("tcpdump", "4.99.5", "packages", 420, "Network monitoring and data acquisition tool",
       "libpcap1", section="net", license="BSD-3-Clause"),
    _p("libpcap1", "1.10.5", "packages", 200, "Low-level packet capture library",
       section="libs", license="BSD-3-Clause"),
    _p("iperf3", "3.17.1", "packages", 90, "Internet Protocol bandwidth measuring tool",
       section="net", license="BSD-3-Clause"),
    _p("wireguard-tools", "1.0.20210914", "packages", 60, "WireGuard userspace control program",
       "kmod-wireguard", section="net"),
    _p("collectd", "5.12.0", "packages", 420, "Lightweight system statistics collection "
       "daemon", "libltdl7", section="utils", service=("collectd", 80)),
    _p("libltdl7", "2.4.7", "packages", 40, "A generic dynamic object loading library",
       section="libs"),
    _p("collectd-mod-cpu", "5.12.0", "packages", 10, "CPU input plugin", "collectd",
       section="utils"),
    _p("rrdtool1", "1.0.50", "packages", 240, "Round Robin Database (RRD) management tools",
       "librrd1", section="utils"),
    _p("librrd1", "1.0.50", "packages", 260, "Round Robin Database (RRD) management library",
       "zlib", section="libs"),
    _p("zlib", "1.3.1", "packages", 80, "Library implementing the deflate compression method",
       section="libs", license="Zlib"),
    _p("python3-light", "3.11.10", "packages", 5200, "Python 3.11 light installation",
       "libpthread", "zlib", section="lang", license="Python-2.0"),
    _p("adblock", "4.2.2", "packages", 70, "Powerful adblock solution", "jshn", "jsonfilter",
       "uclient-fetch", arch_all=True, section="net", service=("adblock", 30),
       conffiles=("/etc/config/adblock",)),
    # routing and telephony feeds
    _p("babeld", "1.13.1", "routing", 90, "A loop-avoiding distance-vector routing protocol",
       "libubox", "libubus", section="net", service=("babeld", 70), license="MIT"),
    _p("siproxd", "0.8.3", "telephony", 110, "A SIP (Session Initiation Protocol) proxy",
       "libltdl7", section="net", service=("siproxd", 50)),
    # luci feed (all architecture-independent but the few C helpers)
    _p("luci", "25.051.13443~aa0c1ec", "luci", 2, "Standard OpenWrt set including full admin "
       "with ppp support and the default Bootstrap theme", "luci-light",
       "luci-app-package-manager", "luci-proto-ppp", "luci-proto-ipv6", "rpcd-mod-rrdns",
       "uhttpd-mod-ubus", arch_all=True, section="luci", license="Apache-2.0"),
    _p("luci-light", "25.051.13443~aa0c1ec", "luci", 2, "Minimum package set using only "
       "admin mini and the standard theme", "luci-base", "luci-theme-bootstrap",
       "luci-app-firewall", "rpcd-mod-file", "rpcd-mod-iwinfo", "uhttpd", arch_all=True,
       section="luci", license="Apache-2.0"),
    _p("luci-base", "25.051.13443~aa0c1ec", "luci", 1100, "LuCI core libraries", "rpcd",
       "rpcd-mod-luci", "rpcd-mod-ucode", "ucode", "ucode-mod-fs", "cgi-io", "lua",
       section="luci", license="Apache-2.0"),
    _p("luci-theme-bootstrap", "25.051.13443~aa0c1ec", "luci", 160, "Bootstrap Theme (default)",
       arch_all=True, section="luci", license="Apache-2.0"),
    _p("luci-app-firewall", "25.051.13443~aa0c1ec", "luci", 90, "Firewall and port forwarding "
       "application", "firewall4", arch_all=True, section="luci", license="Apache-2.0"),
    _p("luci-app-package-manager", "25.051.13443~aa0c1ec", "luci", 60, "LuCI Package Management "
       "Application", arch_all=True, section="luci", license="Apache-2.0",
       provides=("luci-app-opkg",)),
    _p("luci-app-attendedsysupgrade", "25.051.13443~aa0c1ec", "luci", 30, "LuCI support for "
       "attended sysupgrades", "attendedsysupgrade-common", "rpcd-mod-rpcsys", arch_all=True,
       section="luci", license="Apache-2.0"),
    _p("luci-app-statistics", "25.051.13443~aa0c1ec", "luci", 200, "LuCI Statistics "
       "Application", "collectd", "collectd-mod-cpu", "rrdtool1", arch_all=True,
       section="luci", license="Apache-2.0", service=("luci_statistics", 79)),
    _p("luci-proto-ppp", "25.051.13443~aa0c1ec", "luci", 14, "Support for PPP/PPPoE/PPPoA/PPtP",
       arch_all=True, section="luci", license="Apache-2.0"),
    _p("luci-proto-ipv6", "25.051.13443~aa0c1ec", "luci", 14, "Support for DHCPv6/6in4/6to4/"
       "6rd/DS-Lite/aiccu", arch_all=True, section="luci", license="Apache-2.0"),
    _p("luci-proto-wireguard", "25.051.13443~aa0c1ec", "luci", 20, "Support for WireGuard VPN",
       "wireguard-tools", arch_all=True, section="luci", license="Apache-2.0",
       eras=("24.10",)),
    _p("luci-app-wireguard", "23.051.66410~a505bb1", "luci", 20, "WireGuard Status",
       "wireguard-tools", arch_all=True, section="luci", license="Apache-2.0",
       eras=("23.05",)),
    _p("luci-ssl", "25.051.13443~aa0c1ec", "luci", 2, "LuCI with HTTPS support (mbedTLS as "
       "SSL backend)", "luci", "libustream-mbedtls", "px5g-mbedtls", arch_all=True,
       section="luci", license="Apache-2.0"),
    _p("px5g-mbedtls", "10", "luci", 12, "X.509 certificate generator (using mbedtls)",
       "libmbedtls", section="utils", license="LGPL-2.1"),
    _p("luci-i18n-base-de", "25.051.13443~aa0c1ec", "luci", 120, "Translation for luci-base - "
       "Deutsch (German)", arch_all=True, section="luci", license="Apache-2.0"),
    _p("rpcd-mod-luci", "20240305", "luci", 20, "Provides a ubus module for LuCI", "rpcd",
       "libubus", section="libs", license="Apache-2.0"),
    _p("rpcd-mod-ucode", "2024.02.22~8ef4c289", "luci", 14, "ucode plugin for rpcd", "rpcd",
       "libucode", section="libs"),
    _p("rpcd-mod-file", "2024.02.22~8ef4c289", "luci", 12, "rpcd file plugin", "rpcd",
       section="libs"),
    _p("rpcd-mod-iwinfo", "2024.02.22~8ef4c289", "luci", 12, "rpcd iwinfo plugin", "rpcd",
       "libiwinfo", section="libs"),
    _p("rpcd-mod-rrdns", "20170710", "luci", 8, "Rapid reverse DNS rpcd module", "rpcd",
       section="libs", license="Apache-2.0"),
    _p("uhttpd-mod-ubus", "2023.06.25~34a8a74d", "luci", 12, "uhttpd ubus (JSON-RPC) plugin",
       "uhttpd", "libubus", section="net", license="ISC"),
    _p("cgi-io", "2022.08.10~901b0f04", "luci", 12, "LuCI CGI I/O helper", "libubox",
       "libubus", section="net"),
    _p("lua", "5.1.5", "luci", 60, "Lua is a powerful light-weight programming language",
       "liblua5.1.5", section="lang", license="MIT"),
    _p("liblua5.1.5", "5.1.5", "luci", 120, "Lua 5.1 shared library", section="libs",
       license="MIT"),
    # kernel modules: the target's packages/ in 23.05.5, kmods/<kver>/ from 24.10 on
    _p("kmod-ath", "6.1.110", "kmods", 40, "Atheros common driver part", "kmod-mac80211"),
    _p("kmod-ath9k", "6.1.110", "kmods", 320, "Atheros 802.11n wireless cards support",
       "kmod-ath9k-common"),
    _p("kmod-ath9k-common", "6.1.110", "kmods", 120, "Atheros 802.11n wireless devices "
       "(common code for ath9k and ath9k_htc)", "kmod-ath"),
    _p("kmod-ath10k-ct", "6.10", "kmods", 420, "ath10k-ct driver optimized for CT ath10k "
       "firmware", "kmod-ath", "kmod-hwmon-core"),
    _p("kmod-hwmon-core", "", "kmods", 10, "Hardware monitoring support"),
    _p("kmod-mac80211", "6.1.110", "kmods", 380, "Linux 802.11 Wireless Networking Stack",
       "kmod-cfg80211"),
    _p("kmod-cfg80211", "6.1.110", "kmods", 260, "cfg80211 - wireless configuration API"),
    _p("kmod-gpio-button-hotplug", "", "kmods", 8, "Simple GPIO Button Hotplug driver"),
    _p("kmod-button-hotplug", "", "kmods", 6, "Button Hotplug driver"),
    _p("kmod-leds-gpio", "", "kmods", 6, "GPIO LED support"),
    _p("kmod-nft-core", "", "kmods", 200, "Netfilter nf_tables support", "kmod-nfnetlink"),
    _p("kmod-nfnetlink", "", "kmods", 14, "Netlink-based userspace interface"),
    _p("kmod-nft-offload", "", "kmods", 20, "Netfilter nf_tables routing/NAT offload support",
       "kmod-nf-flow", "kmod-nft-core"),
    _p("kmod-nf-flow", "", "kmods", 30, "Netfilter flowtable support", "kmod-nft-core"),
    _p("kmod-pppoe", "", "kmods", 20, "PPP over Ethernet support", "kmod-ppp"),
    _p("kmod-ppp", "", "kmods", 30, "PPP modules"),
    _p("kmod-usb-core", "", "kmods", 120, "Support for USB"),
    _p("kmod-usb2", "", "kmods", 60, "Support for USB2 controllers", "kmod-usb-core"),
    _p("kmod-usb3", "", "kmods", 90, "Support for USB3 controllers", "kmod-usb-core"),
    _p("kmod-usb-chipidea2", "", "kmods", 30, "Support for ChipIdea controllers",
       "kmod-usb2"),
    _p("kmod-usb-ledtrig-usbport", "", "kmods", 6, "USB port LED trigger", "kmod-usb-core"),
    _p("kmod-mt76-core", "6.1.110", "kmods", 120, "MediaTek MT76xx wireless driver common code",
       "kmod-mac80211"),
    _p("kmod-mt7603", "6.1.110", "kmods", 100, "MediaTek MT7603 wireless driver",
       "kmod-mt76-core"),
    _p("kmod-mt76x2", "6.1.110", "kmods", 90, "MediaTek MT76x2 wireless driver",
       "kmod-mt76-core"),
    _p("kmod-mt7915e", "6.1.110", "kmods", 200, "MediaTek MT7915e wireless driver",
       "kmod-mt76-core"),
    _p("kmod-mt7915-firmware", "6.1.110", "kmods", 240, "MediaTek MT7915 firmware",
       "kmod-mt7915e"),
    _p("kmod-e1000e", "", "kmods", 90, "Intel(R) PRO/1000 PCIe cards kernel support"),
    _p("kmod-igc", "", "kmods", 70, "Intel(R) Ethernet Controller I225 Series support"),
    _p("kmod-wireguard", "", "kmods", 50, "WireGuard secure network tunnel", "kmod-udptunnel4"),
    _p("kmod-udptunnel4", "", "kmods", 8, "IPv4 UDP tunneling support"),
)
